"""The tiny MobileVLM: a frozen ViT, a projector and the tiny MobileLLaMA, wired together (lesson 07).

    image (B, 3, 64, 64) -> ViT, penultimate block -> patch tokens (B, 64, 128)   frozen: computed once per image
        -> projector (ldp: 4x fewer) -> visual tokens (B, K, hidden)
    "<bos> <image> <user> what colour is the circle ? <assistant>" -> token embeddings, the one <image>
        placeholder replaced by the K visual tokens -> MobileLLaMA -> "red <eos>", one token at a time

A training sequence holds one image's whole conversation, so one encoder pass trains every answer:
    <bos> <image> <user> q1 <assistant> a1 <eos> <user> q2 <assistant> a2 <eos> ...
and only the answer tokens (and the <eos> that ends each answer) carry a label; everything else is -100.
With `VLMConfig.question_first` the first question comes before the image ('<bos> <user> q1 <image> <assistant> a1 ...'),
so the causal LLM's visual tokens can attend to what is asked (lesson 07, section 10).

Public API
- `prompt_text(question, question_first)`, `check_question(question, tokenizer)`: the single-turn chat prompt, validated.
- `encode_turns(tokenizer, turns, question_first)`, `encode_caption(tokenizer, caption)`: (ids, labels) lists.
- `insert_tokens(x, at, inserted)`: replace row b's position at[b] by the K rows of inserted[b].
- `MobileVLM(config, vit)`: `encode_images`, `project`, `merge`, `forward` -> `VLMOutput` (logits, labels, loss;
  `labelled_only` runs the last layer only where the loss looks),
  `answer` (greedy or sampled generation with the KV cache), `image_attention` (answer -> image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini.config import VLMConfig
from mobilevlm_mini.generate import generate
from mobilevlm_mini.language import MobileLlama, causal_lm_loss
from mobilevlm_mini.patches import grid_shape, sincos_2d
from mobilevlm_mini.projectors import build_projector
from mobilevlm_mini.tokenizer import SPECIAL_TOKENS, Tokenizer, split_words
from mobilevlm_mini.vision import ViT

IGNORE = -100  # label of a token the loss skips (prompt, image, padding)


def prompt_text(question: str, question_first: bool = False) -> str:
    """The single-turn chat prompt: '<image> <user> QUESTION <assistant>', or '<user> QUESTION <image> <assistant>'."""
    if question_first:
        return f"<user> {question} <image> <assistant>"
    return f"<image> <user> {question} <assistant>"


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


def encode_turns(tokenizer: Tokenizer, turns: list[tuple[str, str]], question_first: bool = False) -> tuple[list[int], list[int]]:
    """A multi-turn conversation about one image -> (ids, labels); labels are the answer ids + <eos>, IGNORE elsewhere.

    The first turn's prompt is `prompt_text` (so it holds the one <image>); later turns are '<user> q <assistant>'.
    """
    ids, labels = [], []
    for turn, (question, answer) in enumerate(turns):
        text = prompt_text(question, question_first) if turn == 0 else f"<user> {question} <assistant>"
        prompt = tokenizer.encode(text, add_bos=turn == 0)
        reply = tokenizer.encode(answer, add_bos=False, add_eos=True)
        ids += prompt + reply
        labels += [IGNORE] * len(prompt) + reply
    return ids, labels


def encode_caption(tokenizer: Tokenizer, caption: str) -> tuple[list[int], list[int]]:
    """'<bos> <image> caption <eos>' -> (ids, labels): stage 1 learns to describe the picture."""
    text = tokenizer.encode(caption, add_bos=False, add_eos=True)
    return tokenizer.encode("<image>") + text, [IGNORE, IGNORE] + text


def insert_tokens(x: torch.Tensor, at: torch.Tensor, inserted: torch.Tensor) -> torch.Tensor:
    """Replace x[b, at[b]] by the K rows inserted[b]: x (B, N, ...), at (B,), inserted (B, K, ...) -> (B, N + K - 1, ...)."""
    batch, n = x.shape[:2]
    k = inserted.shape[1]
    out = torch.arange(n + k - 1, device=x.device)[None]  # (1, M) output positions
    offset = out - at[:, None]  # (B, M): 0..K-1 inside the inserted block
    inside = (offset >= 0) & (offset < k)
    source = torch.where(offset < 0, out, out - k + 1).clamp(0, n - 1)  # (B, M) where each text token comes from

    def take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.view(*index.shape, *[1] * (values.ndim - 2)).expand(*index.shape, *values.shape[2:])
        return values.gather(1, index)

    inside = inside.view(*inside.shape, *[1] * (x.ndim - 2))
    return torch.where(inside, take(inserted, offset.clamp(0, k - 1)), take(x, source))


@dataclass
class VLMOutput:
    """What a forward pass returns: logits (B, M, vocab), labels aligned with them (B, M) or None, loss or None.

    shifted (forward's labelled_only): logits (B, Q, vocab) of the positions that predict a label, and labels (B, Q) the
    tokens they predict, so logits[:, i] scores labels[:, i] (otherwise position t predicts labels[:, t + 1]).
    """

    logits: torch.Tensor
    labels: torch.Tensor | None
    loss: torch.Tensor | None
    shifted: bool = False

    def accuracy(self) -> float:
        """Fraction of labelled tokens whose most likely prediction is right (teacher forcing)."""
        logits, target = (self.logits, self.labels) if self.shifted else (self.logits[:, :-1], self.labels[:, 1:])
        predicted = logits.argmax(-1)
        keep = target != IGNORE
        return (predicted[keep] == target[keep]).float().mean().item()


class MobileVLM(nn.Module):
    """Frozen ViT -> projector -> MobileLLaMA, with the visual tokens spliced in where the prompt says <image>."""

    def __init__(self, config: VLMConfig, vit: ViT | None = None, tokenizer: Tokenizer | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer or Tokenizer.default()
        if self.tokenizer.vocab_size != config.llm.vocab_size:
            raise ValueError(f"the tokenizer has {self.tokenizer.vocab_size} tokens but llm.vocab_size is {config.llm.vocab_size}")
        if vit is not None and vit.config != config.vit:
            raise ValueError(f"the given ViT has config {vit.config}, expected {config.vit}")
        self.vit = (vit or ViT(config.vit)).eval().requires_grad_(False)  # frozen, as in MobileVLM
        self.projector = build_projector(config.projector, config.vit.dim, config.llm.hidden_size, **config.projector_options)
        # where each visual token sits on the image grid: learned, started from the 2-D sin-cos table (see lesson 07)
        self.visual_positions = (
            nn.Parameter(sincos_2d(*grid_shape(self.num_visual_tokens), config.llm.hidden_size)) if config.visual_positions else None
        )
        self.llm = MobileLlama(config.llm)

    @property
    def num_visual_tokens(self) -> int:
        """K: how many tokens one image becomes in the LLM's input."""
        return self.projector.num_tokens_out(self.config.vit.num_tokens)

    def part_parameters(self, part: str) -> list[nn.Parameter]:
        """The parameters of one part: "vit", "projector" (with the visual position code) or "llm"."""
        if part not in ("vit", "projector", "llm"):
            raise ValueError(f"unknown part {part!r}; expected vit, projector or llm")
        params = list(getattr(self, part).parameters())
        return params + [self.visual_positions] if part == "projector" and self.visual_positions is not None else params

    def train(self, mode: bool = True) -> MobileVLM:
        """Like nn.Module.train, but the frozen ViT always stays in eval mode."""
        super().train(mode)
        self.vit.eval()
        return self

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Pixels (B, 3, H, W) in [0, 1] -> the frozen ViT's patch tokens (B, N, D_vision), in chunks of batch_size."""
        chunks = [self.vit(images[i : i + batch_size], layer=self.config.vision_layer) for i in range(0, len(images), batch_size)]
        return torch.cat(chunks)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """ViT patch tokens (B, N, D_vision) -> visual tokens in the LLM's space (B, K, hidden), with their 2-D positions."""
        visual = self.projector(features)  # (B, K, hidden)
        return visual if self.visual_positions is None else visual + self.visual_positions

    def merge(
        self, input_ids: torch.Tensor, visual: torch.Tensor, attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Splice visual tokens (B, K, hidden) in place of each row's one <image> id.

        Returns (embeddings (B, N + K - 1, hidden), attention_mask, labels (IGNORE on image tokens), image_start (B,)).
        """
        is_image = input_ids == self.tokenizer.image_id  # (B, N)
        counts = is_image.sum(dim=1)
        if (counts != 1).any():
            raise ValueError(f"every prompt needs exactly one <image> token, got counts {counts.tolist()}")
        at = is_image.int().argmax(dim=1)  # (B,)
        batch, k = visual.shape[:2]
        embeds = insert_tokens(self.llm.embed(input_ids), at, visual)  # (B, N + K - 1, hidden)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        mask = insert_tokens(mask, at, mask.new_ones(batch, k))
        if labels is not None:
            labels = insert_tokens(labels, at, labels.new_full((batch, k), IGNORE))
        return embeds, mask, labels, at

    def forward(
        self, input_ids: torch.Tensor, features: torch.Tensor, attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None, labelled_only: bool = False,
    ) -> VLMOutput:
        """Logits over the merged sequence and, given labels (B, N), the loss on the labelled (answer) tokens only.

        labelled_only (training, with labels): the LLM's last layer runs only at the positions that predict a label
        (3 of about 24 in stage 2), the same loss for less work; the output is then `shifted` (see VLMOutput).
        """
        embeds, mask, labels, _ = self.merge(input_ids, self.project(features), attention_mask, labels)
        if labels is None or not labelled_only:
            logits = self.llm(inputs_embeds=embeds, attention_mask=mask)  # (B, N + K - 1, vocab)
            return VLMOutput(logits, labels, None if labels is None else causal_lm_loss(logits, labels, IGNORE))
        predicting = labels[:, 1:] != IGNORE  # (B, M - 1): position t predicts token t + 1
        q = int(predicting.sum(dim=1).max())
        keep = predicting.int().argsort(dim=1, descending=True, stable=True)[:, :q]  # (B, Q): those positions, in order, first
        targets = labels[:, 1:].gather(1, keep)  # (B, Q), IGNORE where a row has fewer than Q
        logits = self.llm(inputs_embeds=embeds, attention_mask=mask, keep=keep)  # (B, Q, vocab)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        return VLMOutput(logits, targets, loss, shifted=True)

    def prompts(self, questions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-turn chat prompts, left-padded for generation: (input_ids, attention_mask), each (B, P)."""
        ids = [self.tokenizer.encode(prompt_text(check_question(q, self.tokenizer), self.config.question_first)) for q in questions]
        return self.tokenizer.pad(ids, padding_side="left")

    @torch.no_grad()
    def answer(
        self, features: torch.Tensor, questions: list[str], max_new_tokens: int = 4, temperature: float = 0.0,
        top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None, use_cache: bool = True,
    ) -> list[str]:
        """Answer one question per image (ViT features (B, N, D_vision)): greedy by default, sampled with temperature > 0."""
        if len(features) != len(questions):
            raise ValueError(f"got {len(features)} images but {len(questions)} questions; give one question per image")
        input_ids, attention_mask = self.prompts(questions)
        embeds, mask, _, _ = self.merge(input_ids, self.project(features), attention_mask)
        new = generate(
            self.llm, inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, temperature=temperature,
            top_k=top_k, top_p=top_p, eos_token_id=self.tokenizer.eos_id, pad_token_id=self.tokenizer.pad_id,
            use_cache=use_cache, generator=generator,
        )
        return [self.tokenizer.decode(row) for row in new]

    @torch.no_grad()
    def image_attention(self, features: torch.Tensor, question: str, answer: str) -> torch.Tensor:
        """How much the positions that predict the answer attend to each visual token: (K,), averaged over layers and heads.

        features: (1, N, D_vision) for one image. The rows used are the <assistant> token and every answer
        token but the last, i.e. the positions whose outputs are the answer's tokens.
        """
        ids, labels = encode_turns(self.tokenizer, [(check_question(question, self.tokenizer), answer)], self.config.question_first)
        ids, labels = torch.tensor([ids]), torch.tensor([labels])
        embeds, mask, labels, at = self.merge(ids, self.project(features), labels=labels)
        _, weights = self.llm(inputs_embeds=embeds, attention_mask=mask, return_weights=True)
        weights = torch.stack(weights).mean(dim=(0, 2))[0]  # (N, N): mean over layers and heads
        predicting = (labels[0, 1:] != IGNORE).nonzero().squeeze(1)  # position t predicts token t + 1
        start = int(at[0])
        return weights[predicting, start : start + self.num_visual_tokens].mean(dim=0)  # (K,)
