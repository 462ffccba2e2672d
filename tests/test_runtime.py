"""Quick mode, seeding, the cache folder (runtime.py)."""

import pytest
import torch

from mobilevlm_mini.runtime import cache_dir, derive_seed, quick, seed_everything, steps


def test_steps_follow_quick_mode(monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_QUICK", "1")
    assert quick() and steps(1000, 10) == 10
    monkeypatch.setenv("MOBILEVLM_MINI_QUICK", "0")
    assert not quick() and steps(1000, 10) == 1000
    monkeypatch.delenv("MOBILEVLM_MINI_QUICK")
    assert steps(1000, 10) == 1000


def test_seed_everything_is_deterministic():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MOBILEVLM_MINI_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "mobilevlm_mini"


def test_derive_seed_gives_distinct_seeds():
    assert len({derive_seed(seed, i) for seed in range(30) for i in range(1000)}) == 30 * 1000


@pytest.mark.parametrize("module", ["runtime", "data", "tokenizer", "config", "contrastive", "model", "train", "viz"])
def test_every_module_imports_first(module):
    """Each module imports on its own in a fresh interpreter (no circular import whichever comes first)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import mobilevlm_mini.{module}"], check=True)
