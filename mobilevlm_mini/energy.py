"""Energy: joules from the CPU's RAPL counters where they are readable, otherwise a labelled estimate (lesson 10).

RAPL ("running average power limit") is a counter the CPU keeps of the energy its package has used:
Linux shows it as /sys/class/powercap/intel-rapl:N/energy_uj (AMD CPUs too), in microjoules, wrapping
around at max_energy_range_uj. It counts the whole package: every process and the idle cores, not only
ours. Virtual machines, containers and many laptops do not expose it (or only to root).

Where it is missing, `EnergyMeter` estimates: our process's CPU time (all its threads) x WATTS_PER_CORE, a
stated figure for one busy core. Every such number is labelled an estimate in its `method`.

`codecarbon_energy` runs the same work under codecarbon's OfflineEmissionsTracker (no network) so that
lessons and `bench` can show its figure beside ours; its method differs (see the function).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

POWERCAP = Path("/sys/class/powercap")
# One busy core of a laptop or server CPU draws roughly 3-7 W (a 15 W four-core laptop chip, a 280 W
# 64-core server chip); we take 5 W. Only an assumption: measure with RAPL or a wall meter to know.
WATTS_PER_CORE = 5.0


def estimate_method(watts_per_core: float = WATTS_PER_CORE) -> str:
    """The label every estimated figure carries."""
    return (f"estimate: process CPU time x {watts_per_core:g} W per busy core "
            f"(RAPL not readable here; not a measurement)")


RAPL_METHOD = "rapl: CPU package energy counters (whole package, every process on it)"


def rapl_zones(root: Path = POWERCAP) -> list[Path]:
    """Top-level RAPL zones (one per CPU package) whose energy_uj this user can read; their subzones are parts of
    them."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if re.fullmatch(r"intel-rapl:\d+", zone.name):
            try:
                int((zone / "energy_uj").read_text())
            except (OSError, ValueError):
                continue
            zones.append(zone)
    return zones


def energy_method(root: Path = POWERCAP, watts_per_core: float = WATTS_PER_CORE) -> str:
    """How energy will be obtained on this machine: RAPL_METHOD, or the estimate's label."""
    return RAPL_METHOD if rapl_zones(root) else estimate_method(watts_per_core)


def _read_uj(zones: list[Path]) -> list[int]:
    return [int((zone / "energy_uj").read_text()) for zone in zones]


@dataclass
class EnergyReading:
    """What one metered stretch of work used: joules, how they were obtained, wall seconds and process CPU seconds."""

    joules: float
    method: str
    seconds: float
    cpu_seconds: float

    @property
    def measured(self) -> bool:
        """True when the joules come from RAPL counters, False when they are an estimate."""
        return self.method == RAPL_METHOD


class EnergyMeter:
    """`with EnergyMeter() as meter: work()`, then `meter.reading`: RAPL joules, or the CPU-time estimate."""

    def __init__(self, watts_per_core: float = WATTS_PER_CORE, root: Path = POWERCAP):
        if watts_per_core <= 0:
            raise ValueError(f"watts_per_core must be a positive power in watts, got {watts_per_core}")
        self.watts_per_core, self.root = watts_per_core, root
        self.reading: EnergyReading | None = None

    def __enter__(self) -> EnergyMeter:
        self.zones = rapl_zones(self.root)
        self.start_uj = _read_uj(self.zones)
        self.start_wall, self.start_cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        seconds, cpu_seconds = time.perf_counter() - self.start_wall, time.process_time() - self.start_cpu
        if self.zones:
            joules = 0.0
            for zone, start, end in zip(self.zones, self.start_uj, _read_uj(self.zones), strict=True):
                if end < start:  # the counter wrapped around
                    end += int((zone / "max_energy_range_uj").read_text())
                joules += (end - start) / 1e6
            self.reading = EnergyReading(joules, RAPL_METHOD, seconds, cpu_seconds)
        else:
            self.reading = EnergyReading(cpu_seconds * self.watts_per_core, estimate_method(self.watts_per_core),
                                         seconds, cpu_seconds)


def codecarbon_energy(work: Callable[[], object], country_iso_code: str = "FRA",
                      measure_power_secs: float = 1.0) -> dict:
    """Run `work()` under codecarbon's OfflineEmissionsTracker (no network, no files, quiet) and return its figures.

    codecarbon's method: RAPL where readable; otherwise a power model, here its "CPU load" mode for this
    process (the CPU's TDP from its table, or a generic constant for an unknown model, times our share
    of the machine's cores, sampled every `measure_power_secs`) times wall time, plus a RAM power
    constant. Returned: cpu_j, ram_j (joules), seconds, cpu_power_w, ram_power_w, cpu_model, country_iso_code,
    and our own EnergyReading of the same run under "ours".
    """
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(
        country_iso_code=country_iso_code, measure_power_secs=measure_power_secs, tracking_mode="process",
        log_level="error", output_methods=[], allow_multiple_runs=True,
    )
    tracker.start()
    try:
        with EnergyMeter() as meter:
            work()
    finally:
        tracker.stop()
    data = tracker.final_emissions_data
    kwh_to_j = 3.6e6
    return {
        "cpu_j": data.cpu_energy * kwh_to_j, "ram_j": data.ram_energy * kwh_to_j, "seconds": data.duration,
        "cpu_power_w": data.cpu_power, "ram_power_w": data.ram_power, "cpu_model": data.cpu_model,
        "country_iso_code": country_iso_code, "ours": meter.reading,
    }
