"""The headline, measured: `python -m mobilevlm_mini train` with the default preset for seeds 0-4, scored on test.

Each seed runs the command a learner runs, in a subprocess; the --cold seeds start from an empty cache of their own
(pictures drawn and the encoder pretrained inside the timed command: "from nothing"), the others share the warm cache
--cache (where `train` also stores the model the lessons read). The test split is scored once per seed, by the command
itself (metrics.json). Writes assets/measured/seeds.json (every seed's per-type scores, its wall time, the machine
with `doctor`'s compute figure, and a summary: mean with a 95% t-interval, worst seed, worst type) and, with --apply,
the README's seeds table. Restartable: seeds already in the results file are skipped.
Usage: python tools/seeds_table.py [--seeds 0 1 2 3 4] [--cold 1 2 3] [--cache DIR] [--apply]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mobilevlm_mini.doctor import machine
from mobilevlm_mini.results import MEASURED, seeds_markdown, seeds_summary
from mobilevlm_mini.runtime import CACHE_ENV

ROOT = Path(__file__).resolve().parent.parent
RESULTS = MEASURED / "seeds.json"


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


def readme_block(results: dict) -> str:
    """The README's paragraph and table, generated from the results file."""
    s, m = results["summary"], results["machine"]
    return (f"Test exact match of `python -m mobilevlm_mini train` (default preset) for seeds "
            f"{', '.join(map(str, s['seeds']))}, measured by `tools/seeds_table.py` on a {m['cores']}-core "
            f"{m['cpu']} whose `doctor` compute figure is {m['doctor_gflops']:.0f} GFLOP/s: mean "
            f"{100 * s['mean']:.1f}% (95% interval {100 * s['ci95'][0]:.1f}-{min(100 * s['ci95'][1], 100):.1f}), "
            f"worst seed "
            f"{100 * s['min']:.1f}%; from nothing (pictures and encoder included) the command took "
            f"{s['from_nothing_median_seconds']:.0f} s (median of {s['from_nothing_runs']}).\n\n"
            + seeds_markdown(results))


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
    parser.add_argument("--cold", type=int, nargs="*", default=[1, 2, 3], help="seeds that start from an empty cache")
    parser.add_argument("--cache", type=Path, default=None, help="the warm cache the other seeds share")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--apply", action="store_true", help="only rewrite the README from the results file")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    if not args.apply:
        results.setdefault("machine", machine())
        done = {r["seed"] for r in results["runs"]}
        for seed in args.seeds:
            if seed in done:
                continue
            from_nothing = seed in args.cold
            with tempfile.TemporaryDirectory() as empty:
                cache = Path(empty) if from_nothing else (args.cache or Path(os.environ.get(CACHE_ENV, empty)))
                results["runs"].append({**run_seed(seed, cache), "from_nothing": from_nothing})
            results["runs"].sort(key=lambda r: r["seed"])
            results["summary"] = seeds_summary(results["runs"])
            results["command"] = "python -m mobilevlm_mini train --seed S --out DIR"
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
            print(seeds_markdown(results), flush=True)
    apply(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
