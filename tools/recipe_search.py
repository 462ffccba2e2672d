"""Lesson 07's recipe choices, measured on the validation split: each variant of the default recipe, several seeds.

Every variant changes a few fields of the `tiny` preset (dotted names: "instruct.steps"); each (variant, seed) run
trains stages 1 and 2 on the cached encoder's features and is scored on the first 1,000 validation images (every
question asked alone, greedy). The test split is never read here: the recipe is chosen on validation, and
tools/seeds_table.py scores the chosen one on test once. One JSON file per run in --out (restartable: finished runs
are skipped; two processes can share the folder).
Usage: python tools/recipe_search.py VARIANT [VARIANT ...] [--seeds 0 1 2] [--threads 1] [--list]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from mobilevlm_mini.checkpoint import _atomic_write, config_to_dict
from mobilevlm_mini.config import TrainConfig, vlm_preset
from mobilevlm_mini.train import build_model, exact_match, predict, prepare_split, train

ROOT = Path(__file__).resolve().parent.parent
N_VALIDATION = 1000

# name -> (what it tests, overrides of the default preset)
VARIANTS: dict[str, tuple[str, dict]] = {
    "default": ("the default recipe", {}),
    "weights2": ("count and neighbour questions drawn twice as often", {
        "instruct.type_weights": {"count": 2.0, "neighbour": 2.0}}),
    "weights3": ("count and neighbour questions drawn three times as often", {
        "instruct.type_weights": {"count": 3.0, "neighbour": 3.0}}),
    "lr2": ("stage 2's peak learning rate 2e-3 instead of 3e-3", {"instruct.lr": 2e-3}),
    "weights2_lr2": ("weights2 with stage 2's peak learning rate 2e-3 instead of 3e-3", {
        "instruct.type_weights": {"count": 2.0, "neighbour": 2.0}, "instruct.lr": 2e-3}),
    "weights_mixed": ("count and neighbour questions drawn three times, position and exists 1.5 times as often", {
        "instruct.type_weights": {"count": 3.0, "neighbour": 3.0, "position": 1.5, "exists": 1.5}}),
    "turns2": ("two questions per image, 64 images a step", {"instruct.max_turns": 2, "instruct.batch_size": 64}),
    "fresh": ("new questions about each image's scene at every step of stage 2", {"instruct.questions": "fresh"}),
    "steps2000": ("stage 2 twice as long: 2,000 steps", {"instruct.steps": 2000}),
    "steps2000_b64": ("stage 2: 2,000 steps of 64 images (the default's compute, twice its updates)",
                      {"instruct.steps": 2000, "instruct.batch_size": 64}),
    "augment": ("training pictures (the encoder's too) drawn with data.Augment", {"augment": True}),
    "stem_augment": ("augment, with a ViT whose patches come after a 32-channel convolutional stem", {
        "augment": True, "model.vit.stem": 32}),
    "balanced": ("fresh questions, count questions balanced over their answers", {"instruct.questions": "balanced"}),
}


def override(config, key: str, value):
    """`config` with the field at dotted path `key` ("instruct.steps", "model.vit.stem") set to `value`."""
    head, _, rest = key.partition(".")
    return replace(config, **{head: override(getattr(config, head), rest, value) if rest else value})


def configure(name: str, seed: int) -> TrainConfig:
    """The tiny preset with a variant's overrides and the seed."""
    config = vlm_preset("tiny", seed=seed)
    for key, value in VARIANTS[name][1].items():
        config = override(config, key, value)
    return config


def prepare(config: TrainConfig) -> tuple[dict, object, object]:
    """What a variant trains and is scored on: (train and validation splits for `train`, 1,000 validation images,
    1,000 drawn images), each through the encoder the config pretrains."""
    model = build_model(config)
    data = {"train": prepare_split(model, "train", config.n_train, config.encoder_quick, augment=config.augment),
            "validation": prepare_split(model, "validation", config.n_val, config.encoder_quick)}
    return (data, prepare_split(model, "validation", N_VALIDATION, config.encoder_quick),
            prepare_split(model, "drawn", N_VALIDATION, config.encoder_quick))


def run_one(name: str, seed: int, data: dict, validation, drawn, out: Path) -> dict:
    """Train one (variant, seed) and score it on the validation images (and on pictures drawn elsewhere, reported
    beside); written to out/<name>-seed<seed>.json."""
    config = configure(name, seed)
    started = time.perf_counter()
    model, history = train(config, data=data, progress=False)
    scores = exact_match(predict(model, validation))
    drawn_score = exact_match(predict(model, drawn))["exact_match"]
    curve = zip(history["val_step"], history["val_stage"], history["val_loss"], history["val_exact_match"], strict=True)
    result = {
        "variant": name, "what": VARIANTS[name][0], "overrides": VARIANTS[name][1], "seed": seed,
        "split": "validation", "n_images": len(validation), "exact_match": scores["exact_match"],
        "per_type": {kind: s["exact_match"] for kind, s in scores["per_type"].items()},
        "drawn_exact_match": drawn_score,  # the first 1,000 drawn pictures (drawn.py), never used to choose
        "val_curve": [{"step": step, "stage": stage, "loss": loss, "exact_match": score}  # the run's 100 images
                      for step, stage, loss, score in curve],
        "train_seconds": round(history["seconds"], 1), "wall_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "config": config_to_dict(config),
    }
    text = json.dumps(result, indent=1)
    _atomic_write(out / f"{name}-seed{seed}.json", lambda tmp: Path(tmp).write_text(text))  # readers see all or none
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help=f"variants to run: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "measured" / "recipe_search")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    args = parser.parse_args()
    if args.list or not args.variants:
        for name, (what, overrides) in VARIANTS.items():
            print(f"{name:>12}: {what}  {overrides}")
        return
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; expected some of {list(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [(name, seed) for seed in args.seeds for name in args.variants
            if not (args.out / f"{name}-seed{seed}.json").is_file()]
    if not todo:
        print("nothing to run: every (variant, seed) has a result")
        return
    prepared = {}  # per encoder and training pictures
    for name, seed in todo:
        config = configure(name, seed)
        key = tuple(config.encoder_options().items())  # the encoder, and (augment) the training pictures
        if key not in prepared:
            prepared[key] = prepare(config)
        result = run_one(name, seed, *prepared[key], args.out)
        types = " ".join(f"{k} {100 * v:.1f}" for k, v in result["per_type"].items())
        print(f"{name} seed {seed}: {100 * result['exact_match']:.2f}% ({types}) {result['train_seconds']} s",
              flush=True)


if __name__ == "__main__":
    main()
