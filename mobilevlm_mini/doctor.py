"""Pre-flight check: is this machine ready for the course? (`python -m mobilevlm_mini doctor`)"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from dataclasses import dataclass

REQUIRED = ["torch", "einops", "numpy", "matplotlib", "PIL", "datasets", "safetensors", "tqdm"]


@dataclass
class Check:
    """One line of the report: what was checked, whether it passed, what was found, what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Check:
    """Python 3.10 or newer."""
    version = platform.python_version()
    return Check("python", sys.version_info >= (3, 10), version, "install Python 3.10 or newer")


def check_package(name: str) -> Check:
    """A required package imports; reports its version."""
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        return Check(name, False, f"missing ({error})", "run `make setup` (or `pip install -e .`)")
    return Check(name, True, getattr(module, "__version__", "installed"))


def check_torch_build() -> Check:
    """Which torch build is installed and what it can run on; the course needs only the CPU."""
    try:
        import torch
    except ImportError:
        return Check("torch build", False, "torch is not installed", "run `make setup`")
    cuda = "CUDA available" if torch.cuda.is_available() else "CPU only"
    return Check("torch build", True, f"{torch.__version__}, {cuda}, {torch.get_num_threads()} threads")


def check_cores() -> Check:
    """CPU cores: the course is planned for 2."""
    cores = os.cpu_count() or 1
    return Check("cpu cores", True, f"{cores} logical cores")


def run_checks() -> list[Check]:
    """Every check, in the order the report prints them."""
    return [check_python(), *(check_package(name) for name in REQUIRED), check_torch_build(), check_cores()]


def report(checks: list[Check]) -> str:
    """The checks as aligned lines: OK/FAIL, name, what was found, and the fix on failure."""
    lines = []
    for check in checks:
        line = f"{'OK  ' if check.ok else 'FAIL'}  {check.name:<12} {check.detail}"
        lines.append(line + (f"  -> {check.fix}" if not check.ok and check.fix else ""))
    return "\n".join(lines)
