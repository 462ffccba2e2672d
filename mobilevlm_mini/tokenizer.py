"""A word-level tokenizer for the shapes world's language (lessons 04 and 06).

One class serves both text towers: the language model's vocabulary opens with the six chat tokens
(`SPECIAL_TOKENS`), the caption encoder's with only <pad> and <eos> (`CAPTION_SPECIALS`, see
contrastive.py). Real LLMs (MobileLLaMA included: 32,000 SentencePiece tokens) use sub-word byte-pair encoding so
that any text can be written down. The course's language is closed, a few dozen words, so one token
per word is enough and easier to read; a word outside the vocabulary is an error, never a silent <unk>.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

# <image> marks where the projected picture goes; <user> / <assistant> open the turns of a chat.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<image>", "<user>", "<assistant>")
CAPTION_SPECIALS = ("<pad>", "<eos>")  # the caption encoder's text needs no chat turns and no <bos>
PUNCTUATION = ("?", ",", ".")
_PIECES = re.compile(r"<[a-z]+>|[\w'-]+|[^\w\s]")  # a special token, a word, or one punctuation mark


def split_words(text: str) -> list[str]:
    """Lower-case text cut into words, special tokens and punctuation marks: "Is it red?" -> is, it, red, ?"""
    return _PIECES.findall(text.lower())


class Tokenizer:
    """Maps words to ids and back: the special tokens first, then punctuation and words.

    `tokens[i]` is the token with id i; `ids[token]` is the id of a token; `pad_id`, `bos_id`, ...
    are the ids of the special tokens (None for one this vocabulary lacks).
    """

    def __init__(self, tokens: list[str], specials: tuple[str, ...] = SPECIAL_TOKENS):
        if tuple(tokens[: len(specials)]) != tuple(specials):
            raise ValueError(f"the vocabulary must start with the special tokens {list(specials)}, "
                             f"got {tokens[: len(specials)]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"the vocabulary repeats tokens: {sorted({t for t in tokens if tokens.count(t) > 1})}")
        self.tokens, self.specials = list(tokens), tuple(specials)
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.image_id, self.user_id, self.assistant_id = (
            self.ids.get(token) if token in self.specials else None for token in SPECIAL_TOKENS)

    @classmethod
    def from_words(cls, words: list[str], specials: tuple[str, ...] = SPECIAL_TOKENS,
                   punctuation: tuple[str, ...] = PUNCTUATION) -> Tokenizer:
        """A tokenizer for these words (order kept, repeats dropped), after the special tokens and punctuation."""
        bad = [w for w in words if split_words(w) != [w]]
        if bad:
            raise ValueError(f"vocabulary entries must be single lower-case words or punctuation marks, got {bad}")
        return cls(list(dict.fromkeys([*specials, *punctuation, *words])), specials)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, special ones included."""
        return len(self.tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False) -> list[int]:
        """Text -> token ids, with <bos> first (and <eos> last if asked); unknown words raise a ValueError."""
        words = split_words(text)
        unknown = sorted({w for w in words if w not in self.ids})
        if unknown:
            known = " ".join(self.tokens[len(self.specials):])
            raise ValueError(f"unknown words {unknown} in {text!r}; the vocabulary knows only: {known}")
        missing = [token for token, asked, i in (("<bos>", add_bos, self.bos_id), ("<eos>", add_eos, self.eos_id))
                   if asked and i is None]
        if missing:
            raise ValueError(f"asked to add {missing}, which this vocabulary lacks "
                             f"(its special tokens: {list(self.specials)})")
        return [self.bos_id] * add_bos + [self.ids[w] for w in words] + [self.eos_id] * add_eos

    def decode(self, ids: list[int] | torch.Tensor, skip_special: bool = True) -> str:
        """Token ids -> text: words joined by spaces, punctuation attached to the word before it."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad} are outside the vocabulary [0, {self.vocab_size})")
        words = [self.tokens[i] for i in ids if not (skip_special and i < len(self.specials))]
        return re.sub(r" ([^\w\s<])(?=\s|$)", r"\1", " ".join(words))

    def pad(self, sequences: list[list[int]], padding_side: str = "right",
            length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad id lists to one length: (input_ids, attention_mask), each (B, N) long; mask 1 = real token.

        Pad on the right for training, on the left for generation (new tokens then follow every prompt).
        length: N, fixed (the caption encoder's max_len); by default the longest sequence's.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if not sequences:
            raise ValueError("cannot pad an empty list of sequences")
        longest = max(len(s) for s in sequences)
        if length is not None and longest > length:
            raise ValueError(f"a sequence of {longest} tokens does not fit length={length}")
        length = longest if length is None else length
        ids, mask = [], []
        for seq in sequences:
            seq, fill = list(seq), length - len(seq)
            ids.append([self.pad_id] * fill + seq if padding_side == "left" else seq + [self.pad_id] * fill)
            mask.append([0] * fill + [1] * len(seq) if padding_side == "left" else [1] * len(seq) + [0] * fill)
        # one tensor each: fast per training step
        return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)

    def encode_batch(
        self, texts: list[str], add_bos: bool = True, add_eos: bool = False, padding_side: str = "right",
        length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode several texts and pad them (to `length` if given): (input_ids, attention_mask), each (B, N)."""
        return self.pad([self.encode(t, add_bos, add_eos) for t in texts], padding_side, length)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary (and its special tokens) as JSON."""
        Path(path).write_text(json.dumps({"tokens": self.tokens, "specials": list(self.specials)}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}; write one with tokenizer.save(path)")
        saved = json.loads(path.read_text())
        return cls(saved["tokens"], tuple(saved.get("specials", SPECIAL_TOKENS)))
