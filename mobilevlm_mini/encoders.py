"""The course's pretrained encoders, built once and cached (lessons 04, 05, 07, 11).

`pretrained_model()` is the dual encoder contrastive.py's `default_recipe` trains, `pretrained_model(
text_tuned=True)` its copy after locked-image text tuning, and `pretrained_vit()` the frozen ViT every
later lesson reads. Each lives in <models_dir()>/<key>/{model.safetensors, config.json}, where the key
hashes the whole recipe and the data's version (so quick-mode and full-mode encoders never mix); a
missing one is trained deterministically and saved.

Public API
- `models_dir()`, `recipe_path(recipe)`, `tuned_path(recipe, tuning)`: where each encoder is cached.
- `pretrained_model(quick, loss, text_tuned=False)`, `pretrained_vit(quick=None)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from mobilevlm_mini import runtime
from mobilevlm_mini.checkpoint import (
    CONFIG,
    WEIGHTS,
    added_later,
    building,
    config_to_dict,
    load_checkpoint,
    save_checkpoint,
    settings_digest,
)
from mobilevlm_mini.contrastive import (
    TUNING_VERSION,
    ContrastiveConfig,
    ContrastiveModel,
    PretrainConfig,
    TextTuningConfig,
    default_recipe,
    default_text_tuning,
    prepare_pairs,
    train_contrastive,
    tune_text,
)
from mobilevlm_mini.data import DATA_VERSION, load_split
from mobilevlm_mini.vision import ViT, ViTConfig


def models_dir() -> Path:
    """Where pretrained encoders are cached: <runtime.cache_dir()>/models."""
    return runtime.cache_dir() / "models"


def recipe_path(recipe: PretrainConfig) -> Path:
    """The cache folder for this exact recipe: vit-<loss>-<steps>-<hash of every setting and of the data's version>."""
    # redrawn data -> a new encoder; the aligned layout and no augmentation are left out, so the names of encoders
    # cached before they existed still match
    settings = added_later(config_to_dict(recipe), {"layout": "aligned", "augment": False,
                                                    "model": {"vit": {"stem": 0}}})
    digest = settings_digest({"recipe": settings, "data_version": DATA_VERSION})
    return models_dir() / f"vit-{recipe.model.loss}-{recipe.steps}steps-{digest}"


def tuned_path(recipe: PretrainConfig, tuning: TextTuningConfig) -> Path:
    """The cache folder for `recipe`'s encoder after `tune_text(tuning)`: its folder name + -lit- + a hash of the
    tuning."""
    # relabelled captions -> a new tuning
    digest = settings_digest({"tuning": config_to_dict(tuning), "version": TUNING_VERSION})
    return recipe_path(recipe).with_name(f"{recipe_path(recipe).name}-lit-{digest}")


def _cached(path: Path, config: ContrastiveConfig, build: Callable[[], ContrastiveModel]) -> ContrastiveModel:
    """The model saved in `path`, or `build()`, saved there first."""
    if (path / WEIGHTS).is_file() and (path / CONFIG).is_file():
        return load_checkpoint(path, ContrastiveModel(config), config).eval()
    model = build()
    with building(path) as folder:  # two builders at once never share (or half-write) a folder
        save_checkpoint(folder, model, config)
    return model


def pretrained_model(
    quick: bool | None = None, loss: str = "clip", progress: bool = True, image_size: int = ViTConfig.image_size,
    text_tuned: bool = False, layout: str = "aligned", augment: bool = False, stem: int = 0
) -> ContrastiveModel:
    """The course's pretrained dual encoder: from the cache, or trained with `default_recipe` and cached.

    text_tuned: then tuned with `tune_text(default_text_tuning())`, the ViT unchanged (cached too).
    layout: where the pictures it learns from place their objects (data.LAYOUTS); augment: drawn with data.Augment;
    stem: the ViT's convolutional stem (ViTConfig.stem).
    """
    recipe = default_recipe(quick, loss, image_size, layout, augment, stem)
    pairs = functools.cache(lambda: prepare_pairs(load_split("train", recipe.n_train, recipe.world(),
                                                             progress=progress)))
    model = _cached(recipe_path(recipe), recipe.model,
                    lambda: train_contrastive(recipe, *pairs(), progress=progress)[0])
    if not text_tuned:
        return model
    tuning = default_text_tuning(quick)
    return _cached(tuned_path(recipe, tuning), recipe.model,
                   lambda: tune_text(model, tuning, *pairs(), progress=progress)[0])


def pretrained_vit(quick: bool | None = None, loss: str = "clip", progress: bool = True,
                   image_size: int = ViTConfig.image_size, layout: str = "aligned", augment: bool = False,
                   stem: int = 0) -> ViT:
    """The pretrained ViT, frozen (eval mode, no gradients), for later lessons: `vit(images, layer=-2)`."""
    vit = pretrained_model(quick, loss, progress, image_size, layout=layout, augment=augment, stem=stem).vit.eval()
    return vit.requires_grad_(False)
