"""Pre-flight check: is this machine ready for the course? (`python -m mobilevlm_mini doctor`)"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mobilevlm_mini.runtime import cache_dir

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
    """Which torch build is installed and which devices it can run on (cpu, cuda, mps); the course needs the CPU."""
    try:
        import torch
    except ImportError:
        return Check("torch build", False, "torch is not installed", "run `make setup`")
    from mobilevlm_mini.devices import available_devices

    devices = "+".join(available_devices())  # what --device / MOBILEVLM_MINI_DEVICE can choose
    return Check("torch build", True, f"{torch.__version__}, devices: {devices}, {torch.get_num_threads()} threads")


def check_cores() -> Check:
    """CPU cores: the course is planned for 2."""
    cores = os.cpu_count() or 1
    return Check("cpu cores", True, f"{cores} logical cores")


def check_cache() -> Check:
    """The data cache can be created and written (generated data sets and encoders go there)."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as error:
        return Check("data cache", False, f"{path} is not writable ({error.strerror})",
                     "set MOBILEVLM_MINI_DATA to a writable folder")
    return Check("data cache", True, f"{path} is writable")


def check_disk(min_gb: float = 2.0) -> Check:
    """Free disk space where the cache lives."""
    path = cache_dir()
    while not path.exists():
        path = path.parent
    free_gb = shutil.disk_usage(path).free / 1e9
    return Check("free disk", free_gb >= min_gb, f"{free_gb:.1f} GB free at {path}",
                 f"free at least {min_gb:.0f} GB or point MOBILEVLM_MINI_DATA elsewhere")


def check_compute(seconds: float = 5.0, min_gflops: float = 1.0) -> Check:
    """Run float32 matrix products for about `seconds` and report the speed in GFLOP/s."""
    try:
        import torch
    except ImportError:
        return Check("compute", False, "torch is not installed", "run `make setup`")
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    flops, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        flops += 2 * 512**3
    gflops = flops / (time.perf_counter() - start) / 1e9
    return Check("compute", gflops >= min_gflops, f"{gflops:.0f} GFLOP/s (float32 matmul, {seconds:.0f} s)",
                 "this CPU is very slow: use quick mode (MOBILEVLM_MINI_QUICK=1)")


def machine() -> dict:
    """What a measurement ran on: CPU model, cores, torch, Python, `check_compute`'s GFLOP/s, and the date."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    gflops = float(check_compute().detail.split()[0])
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "doctor_gflops": gflops, "date": time.strftime("%Y-%m-%d")}


def run_checks(compute_seconds: float = 5.0) -> list[Check]:
    """Every check, in the order the report prints them."""
    return [
        check_python(), *(check_package(name) for name in REQUIRED), check_torch_build(), check_cores(),
        check_cache(), check_disk(), check_compute(compute_seconds),
    ]


def report(checks: list[Check]) -> str:
    """The checks as aligned lines: OK/FAIL, name, what was found, and the fix on failure."""
    lines = []
    for check in checks:
        line = f"{'OK  ' if check.ok else 'FAIL'}  {check.name:<12} {check.detail}"
        lines.append(line + (f"  -> {check.fix}" if not check.ok and check.fix else ""))
    return "\n".join(lines)
