"""The tiny MobileVLM: visual tokens written over the <image> placeholders, loss on answers only, generation."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from mobilevlm_mini.chat import IGNORE, encode_caption, encode_turns, pad_pairs, prompt_text
from mobilevlm_mini.config import VLMConfig
from mobilevlm_mini.data import shapes_tokenizer
from mobilevlm_mini.language import preset
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.vision import ViTConfig

TOK = shapes_tokenizer()
K = 4  # visual tokens of small_config: a 4 x 4 patch grid, 4x fewer after LDP


def small_config(projector: str = "ldp") -> VLMConfig:
    llm = preset("tiny", vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    # image first, so left-padded prompts put <image> at different places; the question-first layout has its own test
    return VLMConfig(vit=ViTConfig(image_size=64, patch_size=16, dim=32, depth=2, heads=2), llm=llm,
                     projector=projector, question_first=False)


@pytest.fixture(scope="module")
def model() -> MobileVLM:
    torch.manual_seed(0)
    return MobileVLM(small_config()).eval()


def features(model: MobileVLM, batch: int) -> torch.Tensor:
    return model.encode_images(torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(1)))  # (B, 16, 32)


def test_image_tokens_land_on_the_placeholders(model):
    assert model.num_visual_tokens == K
    ids, mask = model.prompts(["what colour is the circle ?", "what is left of the red circle ?"])  # left-padded
    at = [int((row == TOK.image_id).nonzero()[0]) for row in ids]
    assert at[0] != at[1] and (ids == TOK.image_id).sum(dim=1).tolist() == [K, K]
    visual = torch.randn(2, K, 32)
    embeds = model.merge(ids, visual)
    text = model.llm.embed(ids)
    for b in range(2):
        a = at[b]
        assert torch.equal(embeds[b, a : a + K], visual[b])  # the picture, exactly where the placeholders were
        # the text kept
        assert torch.equal(embeds[b, :a], text[b, :a]) and torch.equal(embeds[b, a + K :], text[b, a + K :])


def test_merge_needs_one_placeholder_per_visual_token(model):
    ids = torch.tensor([TOK.encode("<user> what shape is in the centre ?")])
    with pytest.raises(ValueError, match="one <image> placeholder per visual token"):
        model.merge(ids, torch.zeros(1, K, 32))
    with pytest.raises(ValueError, match="one <image> placeholder per visual token"):
        model.merge(torch.tensor([TOK.encode("<image> <image>")]), torch.zeros(1, K, 32))


def test_question_first_prompts_reach_the_model():
    model = MobileVLM(replace(small_config(), question_first=True)).eval()
    prompt, _ = model.prompts(["what colour is the circle ?"])
    image = " ".join(["<image>"] * K)
    assert TOK.decode(prompt[0], skip_special=False) == f"<bos> <user> what colour is the circle? {image} <assistant>"
    assert len(model.answer(features(model, 1), ["what colour is the circle ?"])) == 1


def test_loss_ignores_prompt_and_padding_tokens(model):
    pairs = [encode_turns(TOK, [("what colour is the circle ?", "red")], image_tokens=K),
             encode_turns(TOK, [("how many shapes are there ?", "three"), ("is there a blue square ?", "no")],
                          image_tokens=K)]
    ids, mask, labels = pad_pairs(TOK, pairs)
    feats = features(model, 2)
    out = model(ids, feats, mask, labels)
    # by hand: cross-entropy only where the next token is an answer token (or its <eos>)
    target = out.labels[:, 1:]
    keep = target != IGNORE
    expected = F.cross_entropy(out.logits[:, :-1][keep], target[keep])
    assert torch.allclose(out.loss, expected)
    assert keep.sum() == 2 + 4  # "red <eos>", "three <eos> no <eos>"
    # other question words, or other padding ids, change nothing the loss sees before the answer
    changed = ids.clone()
    changed[mask == 0] = TOK.ids["circle"]
    assert torch.allclose(model(changed, feats, mask, labels).loss, out.loss)
    # the gradient reaches no logit of a prompt or padding position
    logits = out.logits.detach().requires_grad_(True)
    from mobilevlm_mini.language import causal_lm_loss

    causal_lm_loss(logits, out.labels, IGNORE).backward()
    assert logits.grad[:, :-1][~keep].abs().sum() == 0 and logits.grad[:, :-1][keep].abs().sum() > 0


@pytest.mark.parametrize("kind", ["caption", "conversation"])
def test_labelled_only_gives_the_same_loss_accuracy_and_gradient(kind):
    torch.manual_seed(0)
    model = MobileVLM(small_config()).train()
    pairs = (
        [encode_caption(TOK, "a large red circle at the top left", image_tokens=K),
         encode_caption(TOK, "a small blue square", image_tokens=K)] if kind == "caption"
        else [encode_turns(TOK, [("what colour is the circle ?", "red")], image_tokens=K),
              encode_turns(TOK, [("how many shapes are there ?", "three")] * 2, image_tokens=K)]
    )
    ids, mask, labels = pad_pairs(TOK, pairs)
    outputs, grads = [], []
    for labelled_only in (False, True):
        model.zero_grad()
        outputs.append(model(ids, features(model, 2), mask, labels, labelled_only=labelled_only))
        outputs[-1].loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.llm.parameters()]))
    full, kept = outputs
    assert kept.shifted and kept.logits.shape[1] == int((labels != IGNORE).sum(dim=1).max()) < full.logits.shape[1]
    torch.testing.assert_close(kept.loss, full.loss)
    assert kept.accuracy() == pytest.approx(full.accuracy())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_accuracy_counts_labelled_tokens(model):
    ids, labels = (torch.tensor([x])
                   for x in encode_turns(TOK, [("what colour is the circle ?", "red")], image_tokens=K))
    out = model(ids, features(model, 1), labels=labels)
    predicted = out.logits[0, :-1].argmax(-1)
    target = out.labels[0, 1:]
    assert out.accuracy() == pytest.approx(
        (predicted[target != IGNORE] == target[target != IGNORE]).float().mean().item())


def test_greedy_answer_same_with_and_without_cache_and_sampling_repeats(model):
    feats = features(model, 3)
    questions = ["what colour is the circle ?", "what shape is in the centre ?", "how many shapes are there ?"]
    with_cache = model.answer(feats, questions)
    assert with_cache == model.answer(feats, questions, use_cache=False)
    assert all(isinstance(a, str) for a in with_cache)
    one = model.answer(feats, questions, temperature=1.0, generator=torch.Generator().manual_seed(3))
    two = model.answer(feats, questions, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert one == two


def test_greedy_answer_matches_the_argmax_of_a_full_forward(model):
    feats = features(model, 1)
    answer = model.answer(feats, ["what colour is the circle ?"], max_new_tokens=1)[0]
    ids = torch.tensor([TOK.encode(prompt_text("what colour is the circle ?", image_tokens=K))])
    first = model(ids, feats).logits[0, -1].argmax().item()
    assert answer == TOK.decode([first])


def test_image_attention_is_a_distribution_over_visual_tokens(model):
    weights = model.image_attention(features(model, 1), "what colour is the circle ?", "red")
    assert weights.shape == (model.num_visual_tokens,)
    assert (weights >= 0).all() and 0 < weights.sum() <= 1


def test_mlp_keeps_every_patch_token():
    assert MobileVLM(small_config("mlp")).num_visual_tokens == 16


def test_config_mismatches_are_refused():
    config = small_config()
    with pytest.raises(ValueError, match="vocab_size"):
        MobileVLM(VLMConfig(vit=config.vit, llm=preset("tiny", vocab_size=10)))
    from mobilevlm_mini.vision import ViT

    with pytest.raises(ValueError, match="ViT has config"):
        MobileVLM(config, vit=ViT(ViTConfig()))


def test_frozen_vit_stays_frozen_in_train_mode(model):
    model.train()
    assert not model.vit.training and not any(p.requires_grad for p in model.vit.parameters())
    model.eval()
