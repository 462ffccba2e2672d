"""The chat format: prompts, and conversations or captions turned into (ids, labels) for training (lesson 07).

One image becomes K visual tokens, so its place in the text is K `<image>` placeholders; the model later
writes the visual tokens over them (`MobileVLM.merge`), as nanoVLM does. A training sequence holds one
image's whole conversation:

    <bos> <user> q1 <image> x K <assistant> a1 <eos> <user> q2 <assistant> a2 <eos> ...

and only the answer tokens (and the <eos> that ends each answer) carry a label; everything else is IGNORE.
With `question_first=False` the image comes first, as in LLaVA and MobileVLM: '<bos> <image> x K <user> q1 ...'.
"""

from __future__ import annotations

import torch

from mobilevlm_mini.tokenizer import SPECIAL_TOKENS, Tokenizer, split_words

IGNORE = -100  # label of a token the loss skips (prompt, image, padding)


def image_text(image_tokens: int) -> str:
    """K `<image>` placeholders, one per visual token: '<image> <image> ...'."""
    if image_tokens <= 0:
        raise ValueError(f"image_tokens must be the positive number K of visual tokens, got {image_tokens}")
    return " ".join(["<image>"] * image_tokens)


def prompt_text(question: str, question_first: bool = False, *, image_tokens: int) -> str:
    """The single-turn prompt: '<image> ... <user> QUESTION <assistant>', or
    '<user> QUESTION <image> ... <assistant>'."""
    image = image_text(image_tokens)
    return f"<user> {question} {image} <assistant>" if question_first else f"{image} <user> {question} <assistant>"


def check_question(question: str, tokenizer: Tokenizer) -> str:
    """Return the question if the model can read it; a ValueError names what is wrong (empty, unknown words)."""
    words = split_words(question)
    if not words:
        raise ValueError("the question is empty; ask e.g. 'what colour is the circle?'")
    special = sorted({w for w in words if w in SPECIAL_TOKENS})
    if special:
        raise ValueError(f"the question contains special tokens {special}; write plain words")
    unknown = sorted({w for w in words if w not in tokenizer.ids})
    if unknown:
        known = " ".join(t for t in tokenizer.tokens if t not in SPECIAL_TOKENS)
        raise ValueError(f"unknown words {unknown} in {question!r}; the model knows only: {known}")
    return question


def encode_turns(
    tokenizer: Tokenizer, turns: list[tuple[str, str]], question_first: bool = False, *, image_tokens: int
) -> tuple[list[int], list[int]]:
    """A multi-turn conversation about one image -> (ids, labels); labels are the answer ids + <eos>, IGNORE elsewhere.

    The first turn's prompt is `prompt_text` (so it holds the K <image> placeholders); later turns are
    '<user> q <assistant>'.
    """
    ids, labels = [], []
    for turn, (question, answer) in enumerate(turns):
        text = (prompt_text(question, question_first, image_tokens=image_tokens) if turn == 0
                else f"<user> {question} <assistant>")
        prompt = tokenizer.encode(text, add_bos=turn == 0)
        reply = tokenizer.encode(answer, add_bos=False, add_eos=True)
        ids += prompt + reply
        labels += [IGNORE] * len(prompt) + reply
    return ids, labels


def encode_caption(tokenizer: Tokenizer, caption: str, *, image_tokens: int) -> tuple[list[int], list[int]]:
    """'<bos> <image> x K caption <eos>' -> (ids, labels): stage 1 learns to describe the picture."""
    prompt = tokenizer.encode(image_text(image_tokens))
    text = tokenizer.encode(caption, add_bos=False, add_eos=True)
    return prompt + text, [IGNORE] * len(prompt) + text


def pad_pairs(tokenizer: Tokenizer,
              pairs: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad (ids, labels) pairs: input_ids, attention_mask, labels (IGNORE on padding), each (B, N)."""
    ids, mask = tokenizer.pad([i for i, _ in pairs])
    labels = torch.tensor([label + [IGNORE] * (ids.shape[1] - len(label)) for _, label in pairs], dtype=torch.long)
    return ids, mask, labels.view_as(ids)
