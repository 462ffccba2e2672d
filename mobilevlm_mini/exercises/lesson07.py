"""Checkers for lesson 07, the tiny MobileVLM."""

from __future__ import annotations

from typing import Any

import torch

from mobilevlm_mini.chat import IGNORE
from mobilevlm_mini.data import COLOURS
from mobilevlm_mini.exercises._checking import NotYet, _given, _tensor, checker


@checker
def check_07_exercise_1(all_labels: Any, input_ids: Any, attention_mask: Any, tok: Any) -> str:
    """Lesson 07, exercise 1: labels on every text token of a batch: the ids themselves, IGNORE on padding."""
    labels, ids, mask = (_tensor(all_labels, "all_labels"), _tensor(input_ids, "input_ids"),
                         _tensor(attention_mask, "attention_mask"))
    if labels.shape != ids.shape:
        raise NotYet(f"`all_labels` has shape {tuple(labels.shape)}, expected one label per id, {tuple(ids.shape)} "
                     "(the model shifts the labels by one itself)")
    image = ids == tok.image_id  # merge puts the K visual tokens at these placeholders, all ignored
    padding, text = mask == 0, (mask != 0) & ~image
    if (labels[padding] != IGNORE).any():
        raise NotYet(f"{int((labels[padding] != IGNORE).sum())} padding positions (attention_mask == 0) have a label: "
                     "set them to IGNORE")
    if ((labels[text] != ids[text]) & (labels[text] != IGNORE)).any():
        raise NotYet("some labels of text positions differ from the ids: the label of a position is its own id "
                     "(the model compares position t's prediction with the label at t + 1)")
    if (labels[text] == IGNORE).any():
        raise NotYet(f"{int((labels[text] == IGNORE).sum())} text positions are still IGNORE: label every token of the "
                     "questions and answers, not only the answers")
    if not ((labels[image] == IGNORE) | (labels[image] == tok.image_id)).all():
        raise NotYet("the <image> position should keep its id or be IGNORE")
    return ("every text token is labelled, padding never; compare the two losses and the question/answer split with "
            "the solution")


@checker
def check_07_exercise_2(model: Any, features: Any, question: Any, p: Any, p_half: Any) -> str:
    """Lesson 07, exercise 2: the model's probability of each colour as the first answer token, and the same at
    temperature 0.5."""
    feats = _tensor(features, "features")
    if feats.ndim != 3 or feats.shape[0] != 1:
        raise NotYet(f"`features` has shape {tuple(feats.shape)}: give one picture's features, (1, K, D), e.g. "
                     "test.features[i:i + 1]")
    if not isinstance(_given(question, "question"), str):
        raise NotYet(f"`question` should be the text of the question, got {type(question).__name__}")
    colours = list(COLOURS)
    got = _tensor(p, "p").float().flatten()
    if got.numel() != len(colours):
        raise NotYet(f"`p` has {got.numel()} entries: give one probability per colour, in the order of data.COLOURS "
                     f"({len(colours)})")
    tok = model.tokenizer
    input_ids, mask = model.prompts([question])
    with torch.no_grad():
        probs = model(input_ids, feats, mask).logits[0, -1].softmax(-1)  # (vocab,) the next token after the prompt
    want = torch.stack([probs[tok.ids[c]] for c in colours])
    if not (torch.allclose(got, want, atol=1e-4) or torch.allclose(got, want / want.sum(), atol=1e-4)):
        hint = " (did you take the softmax of the logits?)" if (got < 0).any() or got.sum() > 1.01 else ""
        raise NotYet(f"`p` is not the model's probability of each colour as the first answer token{hint}: softmax over "
                     "the vocabulary at the last prompt position, then pick each colour's token id")
    half = _tensor(p_half, "p_half").float().flatten()
    if half.shape != got.shape or (half < 0).any():
        raise NotYet("`p_half` should hold one probability per colour, like `p`")
    sharpened = got**2 / (got**2).sum()
    if not torch.allclose(half / half.sum(), sharpened, atol=1e-4):
        flatter = half.max() / half.sum() < got.max() / got.sum()
        raise NotYet("`p_half` is not the colour distribution at temperature 0.5: "
                     + ("yours is flatter than p, but a temperature below 1 sharpens it: " if flatter else "")
                     + "sampling at temperature T draws from softmax(logits / T)")
    return ("a temperature of 0.5 squares the probabilities and renormalises them; compare your sampled frequencies "
            "with the solution")
