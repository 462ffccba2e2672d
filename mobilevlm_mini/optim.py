"""The optimisation every training loop shares: AdamW, a linear warm-up then a cosine decay to a floor, clipped steps.

Used by the VLM stages (`train.train`), video training (`video.train_video`), contrastive pretraining and
locked-image text tuning (`contrastive`). Each loop builds an `OptimConfig` from its own recipe, so the
recipes (and the cache folders named after them) stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and its schedule: peak lr, steps, warm-up steps, the floor the cosine decays to (a fraction of lr)."""

    lr: float
    steps: int
    warmup: int
    floor: float  # 0.1: end at 10% of the peak; 0.0: end at 0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0  # the gradients' largest total norm
    fused: bool | None = None  # True: PyTorch's fused AdamW kernel (on CPU since torch 2.4)

    def __post_init__(self):
        if self.steps <= 0:
            raise ValueError(f"steps must be a positive number of optimizer steps, got {self.steps}")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"floor must be a fraction of the peak learning rate in [0, 1], got {self.floor}")


def lr_factor(step: int, warmup: int, steps: int, floor: float) -> float:
    """Learning-rate multiplier at `step`: linear warm-up over `warmup` steps, then a cosine from 1 to `floor` at
    `steps`."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))


class Optimizer:
    """AdamW with its warm-up + cosine schedule and gradient clipping: `step(loss)` is one training update."""

    def __init__(self, parameters: Iterable[nn.Parameter], config: OptimConfig):
        self.config = config
        self.parameters = list(parameters)
        self.adamw = torch.optim.AdamW(
            self.parameters, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=config.fused
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.adamw, lambda step: lr_factor(step, config.warmup, config.steps, config.floor)
        )

    def step(self, loss: torch.Tensor) -> None:
        """Backpropagate `loss`, clip the gradients to norm `grad_clip`, update the weights, advance the schedule."""
        self.adamw.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.adamw.step()
        self.schedule.step()

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        return self.schedule.get_last_lr()[0]

    def state_dict(self) -> dict:
        """AdamW's moments and the schedule's position, to resume exactly: {"optimizer": ..., "scheduler": ...}."""
        return {"optimizer": self.adamw.state_dict(), "scheduler": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.adamw.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
