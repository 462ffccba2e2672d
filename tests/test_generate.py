"""Generation: greedy and sampled, with and without the KV cache, batched (lesson 06)."""

import pytest
import torch

from mobilevlm_mini.generate import complete, generate, sample_next_token, top_k_filter, top_p_filter
from mobilevlm_mini.language import MobileLlama, preset
from mobilevlm_mini.tokenizer import Tokenizer

VOCAB = 40


@pytest.fixture(scope="module")
def model() -> MobileLlama:
    torch.manual_seed(0)
    config = preset("tiny", vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return MobileLlama(config).eval()


def greedy_by_hand(model, ids, n):
    for _ in range(n):
        ids = torch.cat([ids, model(ids)[:, -1:].argmax(-1)], dim=1)
    return ids


def test_greedy_with_and_without_cache_agree(model):
    prompt = torch.randint(1, VOCAB, (2, 5))
    cached = generate(model, prompt, max_new_tokens=20, use_cache=True)
    recomputed = generate(model, prompt, max_new_tokens=20, use_cache=False)
    assert cached.shape == (2, 20)
    assert torch.equal(cached, recomputed)
    assert torch.equal(cached, greedy_by_hand(model, prompt, 20)[:, 5:])


def test_padded_batch_equals_one_by_one(model):
    torch.manual_seed(1)
    prompts = [torch.randint(1, VOCAB, (n,)).tolist() for n in (3, 7, 5)]
    tok = Tokenizer([f"<{s}>" for s in ("pad", "bos", "eos", "image", "user", "assistant")]
                    + [f"w{i}" for i in range(VOCAB - 6)])
    ids, mask = tok.pad(prompts, padding_side="left")
    for use_cache in (True, False):
        batched = generate(model, ids, mask, max_new_tokens=12, use_cache=use_cache)
        for row, prompt in enumerate(prompts):
            alone = generate(model, torch.tensor([prompt]), max_new_tokens=12, use_cache=use_cache)
            assert torch.equal(batched[row], alone[0]), f"prompt {row} differs when batched"


def test_stops_at_eos_and_pads_finished_rows(model):
    prompt = torch.randint(1, VOCAB, (2, 4))
    free = generate(model, prompt, max_new_tokens=10)
    eos = int(free[0, 2])  # pretend the third token row 0 makes is <eos>
    out = generate(model, prompt, max_new_tokens=10, eos_token_id=eos, pad_token_id=0)
    assert torch.equal(out[0, :3], free[0, :3]) and torch.all(out[0, 3:] == 0)
    for row in range(2):  # each row stops at its first eos
        hits = (free[row] == eos).nonzero()
        if len(hits):
            assert torch.all(out[row, int(hits[0]) + 1 :] == 0)
    if all((free[row] == eos).any() for row in range(2)):
        assert out.shape[1] < 10


def test_prompt_as_embeddings_gives_the_same_tokens(model):
    prompt = torch.randint(1, VOCAB, (2, 6))
    expected = generate(model, prompt, max_new_tokens=8)
    for use_cache in (True, False):
        out = generate(model, inputs_embeds=model.embed(prompt), max_new_tokens=8, use_cache=use_cache)
        assert torch.equal(out, expected)


def test_sampling_is_repeatable_with_a_generator(model):
    prompt = torch.randint(1, VOCAB, (3, 4))
    runs = [generate(model, prompt, max_new_tokens=15, temperature=1.0, top_k=10, top_p=0.9,
                     generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*runs)
    other = generate(model, prompt, max_new_tokens=15, temperature=1.0, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0], other)


def test_top_k_one_and_tiny_temperature_are_greedy(model):
    prompt = torch.randint(1, VOCAB, (2, 4))
    greedy = generate(model, prompt, max_new_tokens=10)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(generate(model, prompt, max_new_tokens=10, temperature=1.0, top_k=1, generator=g), greedy)
    assert torch.equal(generate(model, prompt, max_new_tokens=10, temperature=1e-4, generator=g), greedy)


def test_top_k_filter():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [[True, False, False, True]]
    assert torch.equal(top_k_filter(logits, 10), logits)


def test_top_p_filter_keeps_the_nucleus():
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    kept = ~torch.isinf(top_p_filter(probs.log(), 0.75))
    assert kept.tolist() == [[False, True, True, False]]  # 0.5 < 0.75, 0.5 + 0.3 >= 0.75
    assert (~torch.isinf(top_p_filter(probs.log(), 0.4))).tolist() == [[False, True, False, False]]


def test_samples_stay_inside_the_filter():
    logits = torch.randn(1000, 20, generator=torch.Generator().manual_seed(0))
    tokens = sample_next_token(logits, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(0))
    top3 = logits.topk(3, dim=-1).indices
    assert (top3 == tokens[:, None]).any(-1).all()


def test_complete_returns_text(model):
    tok = Tokenizer([f"<{s}>" for s in ("pad", "bos", "eos", "image", "user", "assistant")]
                    + [f"w{i}" for i in range(VOCAB - 6)])
    out = complete(model, tok, ["w1 w2", "w3"], max_new_tokens=4)
    assert len(out) == 2 and all(set(t.split()) <= set(tok.tokens) for t in out)


def test_bad_arguments(model):
    prompt = torch.randint(1, VOCAB, (1, 4))
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, prompt, attention_mask=torch.tensor([[1, 1, 1, 0]]))
    with pytest.raises(ValueError, match="exactly one prompt"):
        generate(model)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, prompt, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(model, prompt, temperature=1.0, top_p=1.5)
    with pytest.raises(ValueError, match="top_k must be a positive"):
        generate(model, prompt, temperature=1.0, top_k=0)
