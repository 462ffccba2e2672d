"""Where tensors live: the CPU by default, a GPU or Apple silicon when asked (lesson 13).

Every number the course saves was measured on the CPU, so `cpu` stays the default; `cuda`, `mps`
or `auto` (the first of cuda, mps, cpu that this machine has) are for a learner who wants the same
code faster. Choose with `--device` on the command line or `MOBILEVLM_MINI_DEVICE` in the environment.

Public API
- `DEVICE_ENV`, `DEVICES`: the variable's name and the names it accepts.
- `available_devices()`: what this machine has, e.g. ['cpu'] or ['cpu', 'cuda'].
- `resolve_device(name=None)`: a `torch.device`, or a one-line ValueError naming what is available.
"""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "MOBILEVLM_MINI_DEVICE"
DEVICES = ("cpu", "cuda", "mps", "auto")


def available_devices() -> list[str]:
    """The device types this machine can run on, CPU first."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(name: str | None = None) -> torch.device:
    """`name` (or $MOBILEVLM_MINI_DEVICE, or cpu) as a torch.device; 'auto' picks cuda, then mps, then cpu."""
    name = (name or os.environ.get(DEVICE_ENV) or "cpu").strip().lower()
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    available = available_devices()
    if kind == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if d in available))
    if kind not in available:
        raise ValueError(f"device {name!r} is not available on this machine; available: {', '.join(available)}")
    return torch.device(name)
