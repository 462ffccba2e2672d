"""Lesson 04's longer-training check: the course's contrastive recipe at several step counts, scored on the test split.

The course pretrains its encoder for 600 steps (about 1.5 minutes on 2 cores), because lesson 07 must train
the whole VLM from nothing in 5 minutes. This trains the same recipe (same seed, data and schedule shape)
for each step count and records zero-shot accuracy on "which colour-and-shape is the largest object",
image-to-caption retrieval among 500 test captions and the training time in one JSON file, which lesson 04 reads.
About 15 minutes on 2 cores for the default step counts.
Usage: python tools/encoder_steps.py [--steps 600 1200 1800 2400] [--out assets/measured/encoder_steps.json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from mobilevlm_mini.checkpoint import config_to_dict
from mobilevlm_mini.contrastive import default_recipe, encode_texts, prepare_pairs, train_contrastive
from mobilevlm_mini.data import WorldConfig, images_to_tensor, load_split
from mobilevlm_mini.zero_shot import retrieval_accuracy, zero_shot_largest

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[600, 1200, 1800, 2400], help="step counts to train")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "measured" / "encoder_steps.json")
    args = parser.parse_args()
    recipe = default_recipe(quick=False)
    world = WorldConfig(image_size=recipe.model.vit.image_size)
    train_images, train_scenes = prepare_pairs(load_split("train", recipe.n_train, world))
    # as in lesson 04: zero-shot on all of it, retrieval among its first 500 captions
    test = load_split("test", 1000, world)
    sample = test.select(range(500))
    sample_images, ids = images_to_tensor(sample["image"]), encode_texts(sample["caption"], recipe.model.text.max_len)
    runs = []
    for steps in args.steps:
        model, history = train_contrastive(replace(recipe, steps=steps), train_images, train_scenes)
        zero_shot = zero_shot_largest(model, test)
        runs.append({"steps": steps, "train_seconds": round(history["seconds"], 1), "zero_shot": zero_shot["accuracy"],
                     "zero_shot_n": zero_shot["n"], "retrieval": retrieval_accuracy(model, sample_images, ids),
                     "retrieval_n": len(ids)})
        print(runs[-1], flush=True)
    recipe_dict = config_to_dict(recipe)
    del recipe_dict["steps"]
    result = {"what": "the course's contrastive recipe (CLIP loss) trained for each step count; test split",
              "recipe": recipe_dict, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
