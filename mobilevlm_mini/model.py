"""The tiny MobileVLM: a frozen ViT, a projector and the tiny MobileLLaMA, wired together (lesson 07).

    image (B, 3, 48, 48) -> ViT, penultimate block -> patch tokens (B, 36, 64)   frozen: computed once per image
        -> projector (ldp: 4x fewer) -> visual tokens (B, K, hidden), plus a learned 2-D position code
    "<bos> <user> what colour is the circle ? <image> x K <assistant>" -> token embeddings, the K <image>
        placeholders overwritten by the K visual tokens -> MobileLLaMA -> "red <eos>", one token at a time

The chat format (prompts, labels, padding) lives in `chat.py`.

Public API
- `MobileVLM(config, vit, tokenizer)`: `encode_images`, `project`, `merge` (one masked assignment), `prompts`,
  `forward` -> `VLMOutput` (logits, labels, loss; `labelled_only` computes the logits only where the loss looks),
  `answer` (greedy or sampled generation with the KV cache), `image_attention` (answer -> image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini.chat import IGNORE, check_question, encode_turns, prompt_text
from mobilevlm_mini.config import VLMConfig
from mobilevlm_mini.data import shapes_tokenizer
from mobilevlm_mini.generate import generate
from mobilevlm_mini.language import MobileLlama, causal_lm_loss
from mobilevlm_mini.patches import grid_shape, sincos_2d
from mobilevlm_mini.projectors import build_projector
from mobilevlm_mini.tokenizer import Tokenizer
from mobilevlm_mini.vision import ViT


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

    def _scored(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted, target) ids of the labelled positions, each (T,)."""
        logits, target = (self.logits, self.labels) if self.shifted else (self.logits[:, :-1], self.labels[:, 1:])
        keep = target != IGNORE
        return logits.argmax(-1)[keep], target[keep]

    def accuracy(self) -> float:
        """Fraction of labelled tokens whose most likely prediction is right (teacher forcing)."""
        predicted, target = self._scored()
        return (predicted == target).float().mean().item()

    def token_counts(self) -> torch.Tensor:
        """(labelled tokens, of them predicted right) as a float tensor (2,): what processes add up in lesson 13."""
        predicted, target = self._scored()
        return torch.stack([torch.tensor(len(target), device=target.device), (predicted == target).sum()]).float()


class MobileVLM(nn.Module):
    """Frozen ViT -> projector -> MobileLLaMA, the visual tokens written over the prompt's K <image> placeholders."""

    def __init__(self, config: VLMConfig, vit: ViT | None = None, tokenizer: Tokenizer | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer or shapes_tokenizer()
        if self.tokenizer.vocab_size != config.llm.vocab_size:
            raise ValueError(f"the tokenizer has {self.tokenizer.vocab_size} tokens "
                             f"but llm.vocab_size is {config.llm.vocab_size}")
        if vit is not None and vit.config != config.vit:
            raise ValueError(f"the given ViT has config {vit.config}, expected {config.vit}")
        self.vit = (vit or ViT(config.vit)).eval().requires_grad_(False)  # frozen, as in MobileVLM
        self.projector = build_projector(config.projector, config.vit.dim, config.llm.hidden_size,
                                         **config.projector_options)
        # where each visual token sits on the image grid: learned, started from the 2-D sin-cos table (see lesson 07)
        self.visual_positions = (
            nn.Parameter(sincos_2d(*grid_shape(self.num_visual_tokens), config.llm.hidden_size))
            if config.visual_positions else None
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
        chunks = [self.vit(images[i : i + batch_size], layer=self.config.vision_layer)
                  for i in range(0, len(images), batch_size)]
        return torch.cat(chunks)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """ViT patch tokens (B, N, D_vision) -> visual tokens in the LLM's space (B, K, hidden), with their 2-D
        positions."""
        visual = self.projector(features)  # (B, K, hidden)
        return visual if self.visual_positions is None else visual + self.visual_positions

    def merge(self, input_ids: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, N, hidden) with each row's K <image> placeholders overwritten by its visual tokens
        (B, K, hidden)."""
        is_image = input_ids == self.tokenizer.image_id  # (B, N)
        counts = is_image.sum(dim=1)
        if (counts != visual.shape[1]).any():
            raise ValueError(
                f"every prompt needs one <image> placeholder per visual token ({visual.shape[1]}), "
                f"got counts {counts.tolist()}; "
                "build prompts with chat.prompt_text(..., image_tokens=K) or model.prompts"
            )
        embeds = self.llm.embed(input_ids)  # (B, N, hidden)
        embeds[is_image] = visual.reshape(-1, visual.shape[-1]).to(embeds.dtype)  # row by row, in order
        return embeds

    def forward(
        self, input_ids: torch.Tensor, features: torch.Tensor, attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None, labelled_only: bool = False,
    ) -> VLMOutput:
        """Logits (B, N, vocab) and, given labels (B, N), the loss on the labelled (answer) tokens only.

        labelled_only (training, with labels): the LLM computes logits only at the positions that predict a label
        (3 of about 32 in stage 2), the same loss for less work; the output is then `shifted` (see VLMOutput).
        """
        embeds = self.merge(input_ids, self.project(features))  # (B, N, hidden)
        if labels is None or not labelled_only:
            logits = self.llm(inputs_embeds=embeds, attention_mask=attention_mask)  # (B, N, vocab)
            return VLMOutput(logits, labels, None if labels is None else causal_lm_loss(logits, labels, IGNORE))
        predicting = labels[:, 1:] != IGNORE  # (B, N - 1): position t predicts token t + 1
        q = int(predicting.sum(dim=1).max())
        # (B, Q): those positions, in order, first
        keep = predicting.int().argsort(dim=1, descending=True, stable=True)[:, :q]
        targets = labels[:, 1:].gather(1, keep)  # (B, Q), IGNORE where a row has fewer than Q
        logits = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, keep=keep)  # (B, Q, vocab)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        return VLMOutput(logits, targets, loss, shifted=True)

    def prompts(self, questions: list[str], image_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-turn chat prompts with K = image_tokens (default: num_visual_tokens) placeholders, left-padded for
        generation: (input_ids, attention_mask), each (B, P)."""
        k = self.num_visual_tokens if image_tokens is None else image_tokens
        texts = [prompt_text(check_question(q, self.tokenizer), self.config.question_first, image_tokens=k)
                 for q in questions]
        return self.tokenizer.pad([self.tokenizer.encode(text) for text in texts], padding_side="left")

    @torch.no_grad()
    def answer(
        self, features: torch.Tensor, questions: list[str], max_new_tokens: int = 4, temperature: float = 0.0,
        top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> list[str]:
        """Answer one question per image (ViT features (B, N, D_vision)): greedy by default, sampled with
        temperature > 0."""
        if len(features) != len(questions):
            raise ValueError(f"got {len(features)} images but {len(questions)} questions; give one question per image")
        visual = self.project(features)  # (B, K, hidden)
        input_ids, attention_mask = (t.to(visual.device) for t in self.prompts(questions, visual.shape[1]))
        new = generate(
            self.llm, inputs_embeds=self.merge(input_ids, visual), attention_mask=attention_mask,
            max_new_tokens=max_new_tokens, temperature=temperature,
            top_k=top_k, top_p=top_p, eos_token_id=self.tokenizer.eos_id, pad_token_id=self.tokenizer.pad_id,
            use_cache=use_cache, generator=generator,
        )
        return [self.tokenizer.decode(row) for row in new]

    @torch.no_grad()
    def image_attention(self, features: torch.Tensor, question: str, answer: str) -> torch.Tensor:
        """How much the positions that predict the answer attend to each visual token: (K,), averaged over layers and
        heads.

        features: (1, N, D_vision) for one image. The rows used are the <assistant> token and every answer
        token but the last, i.e. the positions whose outputs are the answer's tokens.
        """
        turn = (check_question(question, self.tokenizer), answer)
        ids, labels = encode_turns(self.tokenizer, [turn], self.config.question_first,
                                   image_tokens=self.num_visual_tokens)
        ids, labels = torch.tensor([ids], device=features.device), torch.tensor([labels], device=features.device)
        embeds = self.merge(ids, self.project(features))
        _, weights = self.llm(inputs_embeds=embeds, return_weights=True)
        weights = torch.stack(weights).mean(dim=(0, 2))[0]  # (N, N): mean over layers and heads
        predicting = (labels[0, 1:] != IGNORE).nonzero().squeeze(1)  # position t predicts token t + 1
        return weights[predicting][:, ids[0] == self.tokenizer.image_id].mean(dim=0)  # (K,)
