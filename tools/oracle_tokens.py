"""The oracle test of lesson 07's lab diary (its appendix, rows D and E): train the tiny VLM on perfect visual \
tokens instead of the ViT's.

Each image becomes 9 tokens, one per grid cell, holding a one-hot code of the cell's shape, colour
and size (or "empty"), scaled by --scale so the projected tokens are about as large as real ones.
If the VLM still fails on these, the limit is the reading (projector + LLM + recipe), not the eyes.
Prints exact match overall and per question type on the test split, and appends it as JSON to --json.

Usage: python tools/oracle_tokens.py [--instruct-steps 350] [--batch-size 32] [--max-turns N] [--question-first]
       [--json oracle.json]
The defaults are lesson 07's first recipe (image first, whole conversations, 32 images a step, stage-2 lr 1e-3).
Measured while building the course (1 thread, seed 0): 55.5% with the defaults, 71.0% with --instruct-steps 1400,
96.6% with --question-first --max-turns 1 --batch-size 128 --instruct-steps 1000.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from mobilevlm_mini import train as training
from mobilevlm_mini.config import StageConfig, vlm_preset
from mobilevlm_mini.data import COLOURS, GRID, SHAPES, SIZES
from mobilevlm_mini.vision import ViT

EMPTY = len(SHAPES) + len(COLOURS) + len(SIZES)  # the feature that marks an empty cell


def oracle_split(split: str, n: int, scale: float, width: int) -> training.PreparedSplit:
    """The first n images of a split as (n, 9, width) one-hot cell codes instead of ViT features."""
    dataset = training.load_images(split, n)
    features = torch.zeros(n, GRID * GRID, width)
    features[:, :, EMPTY] = 1
    for i, objects in enumerate(dataset["objects"]):
        for o in objects:
            cell = features[i, o["row"] * GRID + o["col"]]
            cell[EMPTY] = 0
            cell[SHAPES.index(o["shape"])] = 1
            cell[len(SHAPES) + list(COLOURS).index(o["colour"])] = 1
            cell[len(SHAPES) + len(COLOURS) + SIZES.index(o["size"])] = 1
    return training.split_from_dataset(None, dataset, features * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruct-steps", type=int, default=350, help="stage-2 steps (the first recipe: 350)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="conversations per step in both stages (the first recipe: 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="stage-2 peak learning rate (the first recipe: 1e-3)")
    parser.add_argument("--max-turns", type=int,
                        help="stage 2: questions per image in one sequence (default: the whole conversation)")
    parser.add_argument("--question-first", action="store_true",
                        help="prompt '<user> q <image> <assistant>' (VLMConfig.question_first)")
    parser.add_argument("--scale", type=float, default=8.0,
                        help="multiplier of the one-hot codes (8: projected tokens about as large as real ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="append the result as one JSON line to this file")
    args = parser.parse_args()

    base = vlm_preset("tiny", projector="mlp", seed=args.seed)  # mlp keeps one visual token per cell
    config = replace(
        base,
        model=replace(
            base.model, vit=replace(base.model.vit, image_size=GRID * base.model.vit.patch_size),  # a 3x3 token grid
            question_first=args.question_first,
        ),
        align=StageConfig(steps=150, batch_size=args.batch_size, lr=2e-3),
        instruct=StageConfig(steps=args.instruct_steps, batch_size=args.batch_size, lr=args.lr,
                             max_turns=args.max_turns),
        instruct_projector=True,  # rows D and E of lesson 07 trained the projector in stage 2 too
    )
    # no pretrained encoder: the oracle tokens stand in for its features (as tests/test_train.py does)
    training.pretrained_vit = lambda *args, **kwargs: ViT(config.model.vit)
    width = config.model.vit.dim  # the projector keeps the input width it has in lesson 07
    data = {split: oracle_split(split, n, args.scale, width)
            for split, n in (("train", config.n_train), ("validation", config.n_val))}
    model, history = training.train(config, data=data)
    scores = training.exact_match(training.predict(model, oracle_split("test", config.n_test, args.scale, width)))
    result = {
        "instruct_steps": args.instruct_steps, "batch_size": args.batch_size, "lr": args.lr,
        "max_turns": args.max_turns,
        "question_first": args.question_first, "scale": args.scale, "seed": args.seed,
        "exact_match": round(100 * scores["exact_match"], 1),
        "per_type": {kind: round(100 * s["exact_match"], 1) for kind, s in scores["per_type"].items()},
        "train_seconds": round(history["seconds"], 1), "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
