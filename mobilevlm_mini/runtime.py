"""Run-time helpers: quick mode, sizes, seeding, the cache folder. Imports nothing from the package.

Every notebook picks its sizes through `steps(full, quick)`, so the quick mode that CI runs
(`MOBILEVLM_MINI_QUICK=1`) goes through exactly the same code path as a learner's full run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

QUICK_ENV = "MOBILEVLM_MINI_QUICK"
CACHE_ENV = "MOBILEVLM_MINI_DATA"


def quick() -> bool:
    """True when the environment asks for the quick (CI) mode: `MOBILEVLM_MINI_QUICK=1`."""
    return os.environ.get(QUICK_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}


def steps(full: int, quick_value: int) -> int:
    """Pick a size: `full` for a learner's run, `quick_value` in quick mode."""
    return quick_value if quick() else full


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch so a lesson gives the same numbers every run; returns a generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def derive_seed(seed: int, index: int) -> int:
    """The seed of draw `index` (an epoch, a step) of a run seeded `seed`: distinct for every pair the course uses."""
    return seed * 1_000_003 + index


def cache_dir() -> Path:
    """Where generated data sets and pretrained pieces are kept: `$MOBILEVLM_MINI_DATA` or ~/.cache/mobilevlm_mini."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobilevlm_mini"
    return Path(os.environ.get(CACHE_ENV, default)).expanduser()
