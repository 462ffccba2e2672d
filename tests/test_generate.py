"""Generation: greedy and sampled, with and without the KV cache, batched (lesson 06)."""

import pytest
import torch
import torch.nn.functional as F

from mobilevlm_mini.bench import num_threads
from mobilevlm_mini.generate import (
    CachedDecoder,
    complete,
    generate,
    row_times,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from mobilevlm_mini.language import KVCache, MobileLlama, preset
from mobilevlm_mini.tokenizer import Tokenizer

VOCAB = 40


@pytest.fixture(scope="module")
def model() -> MobileLlama:
    torch.manual_seed(0)
    config = preset("tiny", vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return MobileLlama(config).eval()


def reference_generate(model, input_ids=None, attention_mask=None, inputs_embeds=None, max_new_tokens=32,
                       temperature=0.0, top_k=None, top_p=None, eos_token_id=None, pad_token_id=0, generator=None):
    """The loop before the engineering, kept as the reference: MobileLlama.forward with a KVCache that grows by
    torch.cat, the mask grown by one column and the RoPE tables and 4-D mask rebuilt by every step."""
    prompt = input_ids if input_ids is not None else inputs_embeds
    mask = torch.ones(prompt.shape[:2], dtype=torch.long) if attention_mask is None else attention_mask
    cache, step = KVCache(), {"input_ids": input_ids} if input_ids is not None else {"inputs_embeds": inputs_embeds}
    finished, new_tokens = torch.zeros(len(prompt), dtype=torch.bool), []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(**step, attention_mask=mask, cache=cache)[:, -1]
            token = sample_next_token(logits, temperature, top_k, top_p, generator).masked_fill(finished, pad_token_id)
            new_tokens.append(token)
            if eos_token_id is not None:
                finished |= token == eos_token_id
            if finished.all():
                break
            mask, step = torch.cat([mask, mask.new_ones(len(token), 1)], dim=1), {"input_ids": token[:, None]}
    return torch.stack(new_tokens, dim=1)


def left_padded(lengths, seed=1):
    """Random prompts of these lengths, left-padded with 0: ids (B, P) and mask (B, P)."""
    torch.manual_seed(seed)
    width = max(lengths)
    ids, mask = torch.zeros(len(lengths), width, dtype=torch.long), torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, width - n :], mask[row, width - n :] = torch.randint(1, VOCAB, (n,)), 1
    return ids, mask


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


@pytest.mark.parametrize("lengths", [(5,), (3, 7, 5), (6, 6)])
@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.8, "top_k": 12, "top_p": 0.9}])
def test_same_tokens_as_the_old_loop(model, lengths, sampling):
    ids, mask = left_padded(lengths)
    kwargs = {"max_new_tokens": 20, **sampling}
    expected = reference_generate(model, ids, mask, generator=torch.Generator().manual_seed(3), **kwargs)
    for use_cache in (True, False):
        out = generate(model, ids, mask, use_cache=use_cache, generator=torch.Generator().manual_seed(3), **kwargs)
        assert torch.equal(out, expected), f"use_cache={use_cache}"
    embeds = generate(model, inputs_embeds=model.embed(ids), attention_mask=mask,
                      generator=torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(embeds, expected)


def test_same_tokens_as_the_old_loop_when_rows_stop_at_eos(model):
    ids, mask = left_padded((4, 2, 6), seed=5)
    free = reference_generate(model, ids, mask, max_new_tokens=16)
    for eos in {int(free[0, 1]), int(free[1, 4]), int(free[2, -1])}:
        expected = reference_generate(model, ids, mask, max_new_tokens=16, eos_token_id=eos, pad_token_id=0)
        for use_cache in (True, False):
            out = generate(model, ids, mask, max_new_tokens=16, eos_token_id=eos, pad_token_id=0, use_cache=use_cache)
            assert torch.equal(out, expected)


def test_long_generation_at_the_course_size_equals_the_old_loop():
    torch.manual_seed(0)
    model = MobileLlama(preset("tiny", vocab_size=VOCAB)).eval()
    ids, mask = left_padded((12, 9))
    expected = reference_generate(model, ids, mask, max_new_tokens=64)
    assert torch.equal(generate(model, ids, mask, max_new_tokens=64), expected)
    assert torch.equal(generate(model, ids[:1], max_new_tokens=64), expected[:1])


def test_cached_decoder_logits_equal_recomputing(model):
    ids, mask = left_padded((3, 8, 5), seed=2)
    tokens = torch.randint(1, VOCAB, (3, 6))
    decoder = CachedDecoder(model, ids, mask, max_new_tokens=6)
    steps = [decoder.next_logits()]
    for t in range(5):
        decoder.append(tokens[:, t])
        steps.append(decoder.next_logits())
    full_mask = torch.cat([mask, torch.ones(3, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        full = model(torch.cat([ids, tokens[:, :5]], dim=1), attention_mask=full_mask)[:, ids.shape[1] - 1 :]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    assert decoder.cache.seq_len == ids.shape[1] + 5


def test_generation_past_max_positions_raises_like_the_model(model):
    prompt = torch.randint(1, VOCAB, (1, 60))
    for use_cache in (True, False):
        with pytest.raises(ValueError, match="longer than max_position_embeddings 64"):
            generate(model, prompt, max_new_tokens=10, use_cache=use_cache)
    assert generate(model, prompt, max_new_tokens=5).shape == (1, 5)  # the model runs 64 positions: they fit


def test_quantized_half_precision_and_hooked_models_give_the_old_loops_tokens(model):
    from mobilevlm_mini.quant import quantize_model

    ids, mask = left_padded((5, 3))
    quantized = quantize_model(model, bits=8)  # QuantLinear projections: called one by one, not fused
    assert CachedDecoder.supports(quantized)
    assert torch.equal(generate(quantized, ids, mask, max_new_tokens=12),
                       reference_generate(quantized, ids, mask, max_new_tokens=12))
    half = MobileLlama(model.config).eval().to(torch.bfloat16)
    assert torch.equal(generate(half, ids, mask, max_new_tokens=12),
                       reference_generate(half, ids, mask, max_new_tokens=12))
    seen = []
    handle = model.model.layers[0].self_attn.register_forward_hook(lambda m, args, out: seen.append(out[0].shape))
    try:  # a hook must see every step: generation goes through the model's own forward
        assert not CachedDecoder.supports(model)
        assert torch.equal(generate(model, ids, mask, max_new_tokens=6),
                           reference_generate(model, ids, mask, max_new_tokens=6))
    finally:
        handle.remove()
    assert len(seen) == 12 and seen[1] == (2, 1, 32)  # 6 steps here, 6 in the reference


def test_row_times_splits_one_row_across_threads_and_equals_linear():
    torch.manual_seed(0)
    weight = torch.randn(2048, 1024)  # 2**21 weights: split
    for threads in (1, 2, 4):
        with num_threads(threads):
            for x in (torch.randn(1, 1, 1024), torch.randn(3, 1024)):  # one row (split), several rows (F.linear)
                assert torch.allclose(row_times(x, weight), F.linear(x, weight), atol=1e-4)
                assert row_times(x, weight).shape == (*x.shape[:-1], 2048)
