"""Lesson 08's full-length runs: the `tiny` preset (lesson 07's recipe) per projector, seed and layout.

Each run is `python -m mobilevlm_mini train --projector P --seed S [--layout L] --out RUNS/[L-]P-S` (about 4
minutes for ldp and 7 for mlp on 2 cores; a layout other than aligned also pretrains its own encoder once, about
2 minutes); runs whose metrics.json exists are not trained again, so the tool can be stopped and started again.
Each trained run is then probed (`analysis.probe_visual_tokens`: linear probes on its frozen visual tokens, and on the
ViT's patch tokens under "patch", trained on
PROBE_TRAIN training images, scored on PROBE_TEST test images; saved as probe.json beside the checkpoint). The test
metrics and probe scores of all runs and the preset they used go to one JSON file, which lesson 08 reads.
Usage: python tools/full_length_projectors.py [--projectors mlp ldp] [--seeds 0 1 2] [--layouts aligned]
       [--runs runs/full_length] [--out assets/measured/full_length_projectors.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mobilevlm_mini.checkpoint import config_to_dict, load_config
from mobilevlm_mini.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
PROBE_TRAIN, PROBE_TEST = 2000, 1000  # images the probes learn from and are scored on


def probe(folder: Path) -> dict:
    """The probe scores of one trained run, computed once and kept in folder/probe.json."""
    path = folder / "probe.json"
    if not path.is_file():
        from mobilevlm_mini.analysis import probe_visual_tokens
        from mobilevlm_mini.train import load_trained, prepare_split

        model, config = load_trained(folder)
        train, test = (prepare_split(model, split, n, config.encoder_quick, config.layout)
                       for split, n in (("train", PROBE_TRAIN), ("test", PROBE_TEST)))
        scores = {"train_images": PROBE_TRAIN, "test_images": PROBE_TEST, **probe_visual_tokens(model, train, test),
                  "patch": probe_visual_tokens(model, train, test, tokens="patch")}  # what the projector was given
        path.write_text(json.dumps(scores, indent=1) + "\n")
    return json.loads(path.read_text())


def run_folder(runs: Path, projector: str, seed: int, layout: str) -> Path:
    """Where one run's checkpoint goes: RUNS/P-S for the aligned world (as before layouts existed), else RUNS/L-P-S."""
    return runs / (f"{projector}-{seed}" if layout == "aligned" else f"{layout}-{projector}-{seed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projectors", nargs="+", default=["mlp", "ldp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--layouts", nargs="+", default=["aligned"], help="data.LAYOUTS: aligned, straddle")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "full_length",
                        help="one checkpoint folder per run goes here")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "measured" / "full_length_projectors.json")
    args = parser.parse_args()
    runs, preset, trained = [], None, 0.0
    for layout in args.layouts:
        for projector in args.projectors:
            for seed in args.seeds:
                folder = run_folder(args.runs, projector, seed, layout)
                if not (folder / "metrics.json").is_file():
                    command = [sys.executable, "-m", "mobilevlm_mini", "train", "--projector", projector,
                               "--seed", str(seed), "--layout", layout, "--out", str(folder)]
                    started = time.perf_counter()
                    subprocess.run(command, check=True)
                    trained += time.perf_counter() - started
                # a field added since a run was saved counts as its default, so old and new runs compare
                config = config_to_dict(load_config(folder, TrainConfig))
                found = (config["model"].pop("projector"), config.pop("seed"), config.pop("layout", "aligned"))
                if found != (projector, seed, layout):
                    raise SystemExit(f"{folder} holds another run than {projector}, seed {seed}, layout {layout}")
                if preset not in (None, config):
                    raise SystemExit(f"{folder} was trained with another recipe than the runs before it")
                preset = config
                metrics = json.loads((folder / "metrics.json").read_text())
                runs.append({"projector": projector, "seed": seed, "layout": layout, **metrics, "probe": probe(folder)})
    result = {
        "what": "test exact match of the tiny preset (lesson 07's recipe) per projector, seed and layout",
        "command": "python -m mobilevlm_mini train --projector {projector} --seed {seed} --layout {layout} "
                   "--out RUNS/{folder}",
        "preset": preset,  # the TrainConfig (fields added since at their defaults), without projector, seed and layout
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}: {len(runs)} runs ({trained / 60:.1f} min of training in this call)")


if __name__ == "__main__":
    main()
