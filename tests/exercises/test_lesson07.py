"""Lesson 07's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import torch

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.chat import IGNORE, encode_turns
from mobilevlm_mini.data import COLOURS, shapes_tokenizer
from mobilevlm_mini.tokenizer import Tokenizer

from .helpers import fails, passes


def _conversations(tok: Tokenizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A right-padded batch of two whole conversations: (input_ids, attention_mask, answer-only labels)."""
    turns = [[("what colour is the circle ?", "red"), ("how many shapes are there ?", "two")],
             [("is there a cross ?", "no")]]
    pairs = [encode_turns(tok, t, image_tokens=4) for t in turns]
    ids, mask = tok.pad([p[0] for p in pairs])
    labels = torch.full_like(ids, IGNORE)
    for row, (_, answer_labels) in enumerate(pairs):
        labels[row, : len(answer_labels)] = torch.as_tensor(answer_labels)
    return ids, mask, labels


def test_07_exercise_1(capsys):
    tok = shapes_tokenizer()
    ids, mask, answer_labels = _conversations(tok)
    assert (mask == 0).any() and (ids == tok.image_id).any()
    all_labels = ids.masked_fill(mask == 0, IGNORE).masked_fill(ids == tok.image_id, IGNORE)  # the solution's
    passes(capsys, ex.check_07_exercise_1(all_labels, ids, mask, tok))
    passes(capsys, ex.check_07_exercise_1(ids.masked_fill(mask == 0, IGNORE), ids, mask, tok))
    fails(capsys, ex.check_07_exercise_1(ids, ids, mask, tok), "padding positions", "IGNORE")
    fails(capsys, ex.check_07_exercise_1(answer_labels, ids, mask, tok), "still IGNORE", "not only the answers")
    shifted = torch.cat([all_labels[:, 1:], all_labels[:, :1]], dim=1).masked_fill(mask == 0, IGNORE)
    fails(capsys, ex.check_07_exercise_1(shifted, ids, mask, tok), "its own id")
    fails(capsys, ex.check_07_exercise_1(all_labels[:, 1:], ids, mask, tok), "one label per id")


def test_07_exercise_2(capsys, vlm):
    tok, question = vlm.tokenizer, "what colour is the circle ?"
    features = vlm.encode_images(torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0)))
    input_ids, attention_mask = vlm.prompts([question])
    with torch.no_grad():
        probs = vlm(input_ids, features, attention_mask).logits[0, -1].softmax(-1)  # the solution's
    p = torch.stack([probs[tok.ids[c]] for c in COLOURS])
    sharpened = (p.log() / 0.5).softmax(0)
    passes(capsys, ex.check_07_exercise_2(vlm, features, question, p, sharpened))
    passes(capsys, ex.check_07_exercise_2(vlm, features, question, p / p.sum(), sharpened))
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p, (p.log() * 0.5).softmax(0)),
          "flatter", "softmax(logits / T)")
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p.flip(0), sharpened), "`p` is not")
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p.log(), sharpened), "softmax")
    fails(capsys, ex.check_07_exercise_2(vlm, features[0], question, p, sharpened), "(1, K, D)")
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p[:3], sharpened), "one probability per colour")
