"""What the lessons cache, and `warm`: build it all once, before a workshop or a study session.

Three kinds of pieces live under `runtime.cache_dir()`: drawn data splits (`data/`), pretrained
encoders (`models/`) and trained VLMs (`vlm/`). Each folder name hashes every setting that made it,
so a changed recipe never reads a stale piece, and each is written under a temporary name and then
renamed, so a reader never sees half of one. A piece is built by the first lesson (or command) that
needs it and read by every later one: lesson 07 and `python -m mobilevlm_mini train` register the
model they train where `trained_vlm` looks, so lessons 08-12 never train it again.

Public API
- `vlm_path(config, preset)`, `trained_vlm(preset, **overrides)`, `register_trained(folder, preset)`,
  `training_history(folder)`: the trained-VLM cache.
- `LESSON_SPLITS`, `pieces()`, `warm()`: every cached piece of the course, and building the missing ones.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mobilevlm_mini.checkpoint import (
    WEIGHTS,
    added_later,
    building,
    config_to_dict,
    load_config,
    load_trainer_state,
    settings_digest,
)
from mobilevlm_mini.config import TrainConfig, vlm_preset
from mobilevlm_mini.contrastive import default_recipe, default_text_tuning
from mobilevlm_mini.data import load_split, split_path
from mobilevlm_mini.drawn import DRAWN_SPLIT, drawn_split_path, load_drawn_split
from mobilevlm_mini.encoders import pretrained_model, recipe_path, tuned_path
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.runtime import cache_dir, quick, steps
from mobilevlm_mini.train import load_trained, total_steps, train

# Splits the lessons draw themselves (full size, quick size), beside those the encoder and the VLM read;
# tests/test_cache.py checks that every `load_split` / `prepare_split` of a lesson with `steps(full, quick)` is here.
LESSON_SPLITS = [
    ("train", 2000, 200), ("test", 1000, 200),  # lesson 04: probes and zero-shot
    ("train", 20000, 512), ("test", 500, 100),  # lesson 05: projector probes
    ("train", 2000, 300), ("validation", 200, 50),  # lesson 06: the language model's text
    ("test", 200, 32), ("validation", 16, 16),  # lesson 08: its projectors' test and validation pictures
    ("test", 300, 32),  # lesson 09: scores per quantized part
    ("test", 64, 8),  # lesson 12: our model against transformers'
    ("drawn", 1000, 32),  # lesson 07: pictures drawn by another program (drawn.py)
]


# ---------------------------------------------------------------- trained VLMs


# TrainConfig fields added after the first models were cached, with the value that trains as before they existed
ADDED_LATER = {"layout": "aligned", "augment": False, "model": {"vit": {"stem": 0}},
               "align": {"questions": "stored"}, "instruct": {"questions": "stored"}}


def vlm_path(config: TrainConfig, preset: str) -> Path:
    """The cache folder of the model `config` trains: preset, projector and seed, then a hash of every setting."""
    encoder = recipe_path(default_recipe(config.encoder_quick, **config.encoder_options()))
    settings = added_later(config_to_dict(config), ADDED_LATER)
    digest = settings_digest({"config": settings, "encoder": encoder.name})  # aligned: names as before the option
    return cache_dir() / "vlm" / f"{preset}-{config.model.projector}-seed{config.seed}-{digest}"


def trained_vlm(preset: str = "tiny", progress: bool = True, data: dict | None = None,
                callback: Callable[[dict], None] | None = None, **overrides) -> MobileVLM:
    """The model `vlm_preset(preset, **overrides)` trains: from the cache, or trained now and cached.

    Lessons 07-12 start from it, so each runs alone on a fresh machine and none trains it twice.
    data, callback: passed to `train` when it has to train (lesson 07 draws live curves).
    """
    config = vlm_preset(preset, **overrides)
    path = vlm_path(config, preset)
    if not (path / WEIGHTS).is_file():
        with building(path) as folder:  # private: two builders never write into one folder
            train(config, out=folder, progress=progress, data=data, callback=callback)
    return load_trained(path)[0]


def register_trained(folder: str | Path, preset: str) -> Path:
    """Copy a finished training run into the cache where `trained_vlm(preset, ...)` finds it; returns that folder.

    Raises ValueError when the run stopped before its last step or was not trained from `preset`.
    """
    folder = Path(folder)
    config = load_config(folder, TrainConfig)
    total = total_steps(config)
    done = load_trainer_state(folder)["step"]
    if done < total:
        raise ValueError(f"{folder} stopped at step {done} of {total}: finish it (train --resume) before caching it")
    path = vlm_path(config, preset)
    preset_config = vlm_preset(preset, projector=config.model.projector, seed=config.seed, layout=config.layout,
                               augment=config.augment)
    if vlm_path(preset_config, preset) != path:
        raise ValueError(f"{folder} was not trained with preset {preset!r} (its settings differ): not cached")
    if not (path / WEIGHTS).is_file():
        with building(path) as staging:
            shutil.copytree(folder, staging, dirs_exist_ok=True)
    return path


def training_history(folder: str | Path) -> dict:
    """The curves a finished run recorded (per step and per validation) and its training seconds."""
    state = load_trainer_state(folder)
    return {**state["history"], "seconds": state["seconds"]}


# ---------------------------------------------------------------- warm


@dataclass
class Piece:
    """One cached piece: what it is, where it lives, and how to build it."""

    name: str
    path: Path
    build: Callable[[], object]


def _split_piece(split: str, n: int) -> Piece:
    """The piece that draws a split's first n pictures: data.py's splits, or drawn.py's "drawn"."""
    if split == DRAWN_SPLIT:
        return Piece(f"data: {split} split, {n} pictures", drawn_split_path(n), lambda n=n: load_drawn_split(n))
    return Piece(f"data: {split} split, {n} pictures", split_path(split, n), lambda s=split, n=n: load_split(s, n))


def pieces() -> list[Piece]:
    """Every cached piece the lessons read, in the order they are first needed (sizes follow quick mode)."""
    presets = ["quick"] if quick() else ["tiny", "quick"]  # lesson 13 trains the quick preset in both modes
    recipe, tuning = default_recipe(), default_text_tuning()
    splits = {(split, steps(full, small)) for split, full, small in LESSON_SPLITS}
    splits |= {("test", vlm_preset(preset).n_test) for preset in presets}  # what `train` scores at its end
    return [
        *(_split_piece(split, n) for split, n in sorted(splits, key=lambda s: (s[1], s[0]))),
        Piece(f"encoder: {recipe.model.loss} pretraining, {recipe.steps} steps", recipe_path(recipe), pretrained_model),
        Piece(f"encoder: text tuning, {tuning.steps} steps", tuned_path(recipe, tuning),
              lambda: pretrained_model(text_tuned=True)),
        *(Piece(f"VLM: preset {preset} ({config.model.projector}, seed {config.seed})", vlm_path(config, preset),
                lambda preset=preset: trained_vlm(preset))
          for preset, config in ((preset, vlm_preset(preset)) for preset in presets)),
    ]


def warm(report: Callable[[str], None] = print) -> list[tuple[str, str, float]]:
    """Build every missing piece (each shows its own progress bar); returns (piece, 'built' or 'cached', seconds)."""
    done = []
    listed = pieces()
    for number, piece in enumerate(listed, 1):
        if piece.path.exists():
            done.append((piece.name, "cached", 0.0))
            report(f"[{number}/{len(listed)}] {piece.name}: already cached")
            continue
        report(f"[{number}/{len(listed)}] {piece.name}: building")
        start = time.perf_counter()
        piece.build()
        done.append((piece.name, "built", time.perf_counter() - start))
    built = [row for row in done if row[1] == "built"]
    summary = f"built {len(built)} of {len(done)} pieces in {sum(row[2] for row in built):.0f} s" if built else \
        f"nothing to build: all {len(done)} pieces were already cached"
    report(f"{summary} (cache: {cache_dir()})")
    return done
