"""The chat format: K <image> placeholders, labels on answers only, question-first layout, padding."""

import pytest

from mobilevlm_mini.chat import IGNORE, check_question, encode_caption, encode_turns, pad_pairs, prompt_text
from mobilevlm_mini.data import shapes_tokenizer

TOK = shapes_tokenizer()


def test_labels_cover_answers_and_their_eos_only():
    ids, labels = encode_turns(TOK, [("what colour is the circle ?", "red"), ("where is the circle ?", "top left")],
                               image_tokens=3)
    assert len(ids) == len(labels) and ids.count(TOK.image_id) == 3
    kept = [TOK.tokens[label] for label in labels if label != IGNORE]
    assert kept == ["red", "<eos>", "top", "left", "<eos>"]
    ids, labels = encode_caption(TOK, "a small red circle in the centre", image_tokens=2)
    assert ids[:3] == [TOK.bos_id, TOK.image_id, TOK.image_id] and labels[:3] == [IGNORE] * 3
    assert (TOK.decode(ids) == TOK.decode([label for label in labels if label != IGNORE])
            == "a small red circle in the centre")


def test_question_first_puts_the_first_question_before_the_image():
    turns = [("what colour is the circle ?", "red"), ("where is the circle ?", "top left")]
    text = prompt_text("what colour is the circle ?", question_first=True, image_tokens=2)
    assert text == "<user> what colour is the circle ? <image> <image> <assistant>"
    ids, labels = encode_turns(TOK, turns, question_first=True, image_tokens=2)
    words = [TOK.tokens[i] for i in ids]
    assert words[:2] == ["<bos>", "<user>"] and words.count("<image>") == 2
    assert words.index("<image>") == words.index("?") + 1 < words.index("red")  # after the question, before the answer
    assert labels == encode_turns(TOK, turns, image_tokens=2)[1]  # the same answers labelled, at the same places


def test_image_tokens_must_be_positive_and_given():
    with pytest.raises(ValueError, match="image_tokens"):
        prompt_text("what colour is the circle ?", image_tokens=0)
    with pytest.raises(TypeError):
        encode_turns(TOK, [("what colour is the circle ?", "red")], True)  # K is keyword-only: no silent default


def test_pad_pairs_pads_labels_with_ignore():
    pairs = [encode_turns(TOK, [("what colour is the circle ?", "red")], image_tokens=1),
             encode_turns(TOK, [("how many shapes are there ?", "three"), ("is there a blue square ?", "no")],
                          image_tokens=1)]
    ids, mask, labels = pad_pairs(TOK, pairs)
    assert ids.shape == mask.shape == labels.shape == (2, max(len(i) for i, _ in pairs))
    assert bool((labels[mask == 0] == IGNORE).all()) and bool((ids[mask == 0] == TOK.pad_id).all())


def test_check_question_explains_bad_questions():
    assert check_question("what colour is the circle ?", TOK)
    with pytest.raises(ValueError, match="empty"):
        check_question("   ", TOK)
    with pytest.raises(ValueError, match=r"unknown words \['dog', 'purple-ish'\]"):
        check_question("is the dog purple-ish ?", TOK)
    with pytest.raises(ValueError, match="special tokens"):
        check_question("<image> what colour ?", TOK)
