"""The word-level tokenizer (lesson 06)."""

import importlib.util

import pytest
import torch

from mobilevlm_mini.data import shapes_tokenizer
from mobilevlm_mini.tokenizer import CAPTION_SPECIALS, SPECIAL_TOKENS, Tokenizer, split_words

WORDS = ["a", "red", "blue", "circle", "square", "is", "there", "what", "colour", "the", "yes", "no", "and"]


@pytest.fixture
def tok() -> Tokenizer:
    return Tokenizer.from_words(WORDS)


def test_special_tokens_come_first(tok):
    assert tok.tokens[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.image_id) == (0, 1, 2, 3)
    assert tok.tokens[tok.user_id] == "<user>" and tok.tokens[tok.assistant_id] == "<assistant>"
    assert tok.vocab_size == len(tok) == len(SPECIAL_TOKENS) + 3 + len(WORDS)


@pytest.mark.parametrize("text", ["a red circle and a blue square", "is there a red circle? yes",
                                  "what colour is the square?"])
def test_round_trip(tok, text):
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == text
    assert tok.decode(torch.tensor(ids)) == text


def test_split_and_case():
    assert split_words("Is there a Red circle?") == ["is", "there", "a", "red", "circle", "?"]
    assert split_words("<image> <user> what?") == ["<image>", "<user>", "what", "?"]


def test_special_tokens_in_text(tok):
    ids = tok.encode("<image> <user> what colour is the circle? <assistant> red", add_bos=False)
    assert ids[:2] == [tok.image_id, tok.user_id] and tok.assistant_id in ids
    assert tok.decode(ids, skip_special=False) == "<image> <user> what colour is the circle? <assistant> red"
    assert tok.decode(ids) == "what colour is the circle? red"


def test_unknown_words_are_listed(tok):
    with pytest.raises(ValueError, match=r"unknown words \['green', 'triangle'\]"):
        tok.encode("a green triangle and a triangle")


def test_decode_rejects_ids_outside_vocabulary(tok):
    with pytest.raises(ValueError, match=r"token ids \[99\] are outside the vocabulary"):
        tok.decode([1, 99])


def test_from_words_rejects_non_words():
    with pytest.raises(ValueError, match=r"single lower-case words .* got \['Red', 'two words'\]"):
        Tokenizer.from_words(["red", "Red", "two words"])


def test_repeated_words_are_dropped():
    assert Tokenizer.from_words(["red", "red", "blue"]).vocab_size == len(SPECIAL_TOKENS) + 3 + 2


@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_padding_and_masks(tok, side):
    ids, mask = tok.encode_batch(["a red circle", "yes"], padding_side=side)
    assert ids.shape == mask.shape == (2, 4) and ids.dtype == mask.dtype == torch.long
    assert mask.sum(1).tolist() == [4, 2]
    assert torch.all(ids[mask == 0] == tok.pad_id)
    expected = [0, 0, 1, 1] if side == "left" else [1, 1, 0, 0]
    assert mask[1].tolist() == expected
    assert tok.decode(ids[1]) == "yes"


def test_pad_errors(tok):
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right', got 'middle'"):
        tok.pad([[1, 2]], padding_side="middle")
    with pytest.raises(ValueError, match="empty list"):
        tok.pad([])


def test_save_and_load(tok, tmp_path):
    tok.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.tokens == tok.tokens
    assert loaded.encode("what colour is the circle?") == tok.encode("what colour is the circle?")
    with pytest.raises(FileNotFoundError, match="no tokenizer file at"):
        Tokenizer.load(tmp_path / "missing.json")


def test_vocabulary_must_start_with_special_tokens():
    with pytest.raises(ValueError, match="must start with the special tokens"):
        Tokenizer(["red", "blue"])


@pytest.mark.skipif(importlib.util.find_spec("mobilevlm_mini.data") is None, reason="data.py not written yet")
def test_default_covers_the_shapes_world_vocabulary():
    from mobilevlm_mini.data import vocabulary

    tok = shapes_tokenizer()
    assert set(vocabulary()) <= set(tok.tokens)


def test_ids_round_trip_through_text(tok):
    ids = torch.randint(len(SPECIAL_TOKENS), tok.vocab_size, (200,),
                        generator=torch.Generator().manual_seed(0)).tolist()
    assert tok.encode(tok.decode(ids), add_bos=False) == ids


def test_caption_vocabulary_shares_the_class_with_its_own_specials(tmp_path):
    captions = Tokenizer.from_words(["a", "red", "circle"], specials=CAPTION_SPECIALS, punctuation=())
    assert captions.tokens == ["<pad>", "<eos>", "a", "red", "circle"]
    assert (captions.pad_id, captions.eos_id, captions.bos_id, captions.image_id) == (0, 1, None, None)
    ids, mask = captions.encode_batch(["a red circle", "a circle"], add_bos=False, add_eos=True, length=6)
    assert ids.tolist() == [[2, 3, 4, 1, 0, 0], [2, 4, 1, 0, 0, 0]] and mask.sum().item() == 7
    assert captions.decode(ids[0]) == "a red circle"
    with pytest.raises(ValueError, match=r"asked to add \['<bos>'\], which this vocabulary lacks"):
        captions.encode("a red circle")
    with pytest.raises(ValueError, match="does not fit length=3"):
        captions.encode_batch(["a red circle"], add_bos=False, add_eos=True, length=3)
    captions.save(tmp_path / "captions.json")
    loaded = Tokenizer.load(tmp_path / "captions.json")
    assert loaded.tokens == captions.tokens and loaded.specials == CAPTION_SPECIALS
