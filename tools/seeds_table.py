"""The headline, measured: `python -m mobilevlm_mini train` with the default preset for seeds 0-4, scored on test.

Each seed runs the command a learner runs, in a subprocess; the first --cold seeds start from an empty cache of
their own (pictures drawn and the encoder pretrained inside the timed command: "from nothing"), the others share
the warm cache --cache. The test split is scored once per seed, by the command itself (metrics.json). Writes
assets/measured/seeds.json (every seed's per-type scores, its wall time, the machine with `doctor`'s compute figure,
and a summary: mean with a 95% t-interval, worst seed, worst type) and, with --apply, the README's seeds table.
Restartable: seeds already in the results file are skipped.
Usage: python tools/seeds_table.py [--seeds 0 1 2 3 4] [--cold 3] [--cache DIR] [--apply]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mobilevlm_mini.data import QUESTION_TYPES
from mobilevlm_mini.doctor import machine
from mobilevlm_mini.runtime import CACHE_ENV

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "assets" / "measured" / "seeds.json"
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # by df


def run_seed(seed: int, cache: Path) -> dict:
    """Run `train --seed seed` with `cache` as the course's cache; its wall time and test metrics."""
    with tempfile.TemporaryDirectory() as runs:
        out = Path(runs) / f"seed{seed}"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mobilevlm_mini", "train", "--seed", str(seed), "--out", str(out)],
                       check=True, cwd=ROOT, env={**os.environ, CACHE_ENV: str(cache)})
        wall = time.perf_counter() - started
        metrics = json.loads((out / "metrics.json").read_text())
    return {"seed": seed, "wall_seconds": round(wall, 1), "train_seconds": metrics["train_seconds"],
            "n_questions": metrics["n"], "exact_match": metrics["exact_match"],
            "per_type": {kind: s["exact_match"] for kind, s in metrics["per_type"].items()}}


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% t-interval (low, high) over independent runs."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = T_975[len(values) - 1] * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def summary(runs: list[dict]) -> dict:
    """Mean (95% t-interval), worst and best seed, each type's worst seed, median time from nothing."""
    scores = [r["exact_match"] for r in runs]
    mean, low, high = interval(scores)
    cold = [r["wall_seconds"] for r in runs if r["from_nothing"]]
    return {
        "seeds": [r["seed"] for r in runs], "mean": mean, "ci95": [low, high], "min": min(scores), "max": max(scores),
        "type_min": {k: min(r["per_type"][k] for r in runs) for k in QUESTION_TYPES},
        "type_mean": {k: statistics.fmean(r["per_type"][k] for r in runs) for k in QUESTION_TYPES},
        "from_nothing_median_seconds": statistics.median(cold) if cold else None, "from_nothing_runs": len(cold),
    }


def table(results: dict) -> str:
    """The seeds table as Markdown: one row per seed (overall and per type, %), then the mean and the worst."""
    head = "| seed | overall | " + " | ".join(QUESTION_TYPES) + " | from nothing |"
    lines = [head, "|" + "---|" * (len(QUESTION_TYPES) + 3)]
    for r in results["runs"]:
        cells = [f"{100 * r['per_type'][k]:.1f}" for k in QUESTION_TYPES]
        took = f"{r['wall_seconds']:.0f} s" if r["from_nothing"] else "(warm cache)"
        lines.append(f"| {r['seed']} | **{100 * r['exact_match']:.1f}** | " + " | ".join(cells) + f" | {took} |")
    s = results["summary"]
    lines.append(f"| mean | **{100 * s['mean']:.1f}** | "
                 + " | ".join(f"{100 * s['type_mean'][k]:.1f}" for k in QUESTION_TYPES) + " | |")
    lines.append(f"| worst | {100 * s['min']:.1f} | "
                 + " | ".join(f"{100 * s['type_min'][k]:.1f}" for k in QUESTION_TYPES) + " | |")
    return "\n".join(lines)


def readme_block(results: dict) -> str:
    """The README's paragraph and table, generated from the results file."""
    s, m = results["summary"], results["machine"]
    return (f"Test exact match of `python -m mobilevlm_mini train` (default preset) for seeds "
            f"{', '.join(map(str, s['seeds']))}, measured by `tools/seeds_table.py` on a {m['cores']}-core "
            f"{m['cpu']} whose `doctor` compute figure is {m['doctor_gflops']:.0f} GFLOP/s: mean "
            f"{100 * s['mean']:.1f}% (95% interval {100 * s['ci95'][0]:.1f}-{100 * s['ci95'][1]:.1f}), worst seed "
            f"{100 * s['min']:.1f}%; from nothing (pictures and encoder included) the command took "
            f"{s['from_nothing_median_seconds']:.0f} s (median of {s['from_nothing_runs']}).\n\n" + table(results))


def apply(results: dict) -> None:
    """Rewrite the README's block between <!-- seeds-table --> markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = re.compile(r"(<!-- seeds-table -->\n).*?(\n<!-- /seeds-table -->)", re.S)
    if not block.search(text):
        raise SystemExit("README.md has no <!-- seeds-table --> ... <!-- /seeds-table --> block")
    readme.write_text(block.sub(lambda m: m.group(1) + readme_block(results) + m.group(2), text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cold", type=int, default=3, help="how many of the seeds start from an empty cache")
    parser.add_argument("--cache", type=Path, default=None, help="the warm cache the other seeds share")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--apply", action="store_true", help="only rewrite the README from the results file")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    if not args.apply:
        results.setdefault("machine", machine())
        done = {r["seed"] for r in results["runs"]}
        cold_left = args.cold - sum(r["from_nothing"] for r in results["runs"])
        for seed in args.seeds:
            if seed in done:
                continue
            from_nothing = cold_left > 0
            with tempfile.TemporaryDirectory() as empty:
                cache = Path(empty) if from_nothing else (args.cache or Path(os.environ.get(CACHE_ENV, empty)))
                results["runs"].append({**run_seed(seed, cache), "from_nothing": from_nothing})
            cold_left -= from_nothing
            results["runs"].sort(key=lambda r: r["seed"])
            results["summary"] = summary(results["runs"])
            results["command"] = "python -m mobilevlm_mini train --seed S --out DIR"
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
            print(table(results), flush=True)
    apply(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
