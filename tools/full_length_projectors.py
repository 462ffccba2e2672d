"""Lesson 08's full-length check: the `tiny` preset (lesson 07's recipe) with the mlp and the ldp projector, 3 seeds.

Lesson 08's grid uses a shortened recipe so that it runs in minutes; this asks whether its finding holds
at full length. Each run is `python -m mobilevlm_mini train --projector P --seed S --out RUNS/P-S` (about
4 minutes for ldp and 7 for mlp on 2 cores); runs whose metrics.json exists are not trained again. The
test metrics of all runs and the preset they used go to one JSON file, which lesson 08 reads.
Usage: python tools/full_length_projectors.py [--runs runs/full_length]
       [--out assets/measured/full_length_projectors.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROJECTORS, SEEDS = ("mlp", "ldp"), (0, 1, 2)
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "full_length",
                        help="one checkpoint folder per run goes here")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "measured" / "full_length_projectors.json")
    args = parser.parse_args()
    runs, preset = [], None
    for projector in PROJECTORS:
        for seed in SEEDS:
            folder = args.runs / f"{projector}-{seed}"
            if not (folder / "metrics.json").is_file():
                command = [sys.executable, "-m", "mobilevlm_mini", "train", "--projector", projector,
                           "--seed", str(seed), "--out", str(folder)]
                subprocess.run(command, check=True)
            config = json.loads((folder / "config.json").read_text())
            if (config["model"].pop("projector"), config.pop("seed")) != (projector, seed):
                raise SystemExit(f"{folder} holds another run than {projector} with seed {seed}")
            if preset not in (None, config):
                raise SystemExit(f"{folder} was trained with another recipe than the runs before it")
            preset = config
            runs.append({"projector": projector, "seed": seed, **json.loads((folder / "metrics.json").read_text())})
    result = {
        "what": "test exact match of the tiny preset (lesson 07's recipe) per projector and seed",
        "command": "python -m mobilevlm_mini train --projector {projector} --seed {seed} --out RUNS/{projector}-{seed}",
        "preset": preset,  # the TrainConfig as config.json holds it, without projector and seed
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}: {len(runs)} runs")


if __name__ == "__main__":
    main()
