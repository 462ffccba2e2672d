"""Checkers for lesson 04, a tiny ViT and contrastive pretraining."""

from __future__ import annotations

import dataclasses
from typing import Any

from mobilevlm_mini.contrastive import PretrainConfig, TextTuningConfig
from mobilevlm_mini.exercises._checking import NotYet, _call, _given, _number, checker


@checker
def check_04_exercise_1(recipes: Any, short: Any) -> str:
    """Lesson 04, exercise 1: CLIP and SigLIP recipes at batch 16 and 128 that see the same number of images as each
    other."""
    keys = [(loss, batch) for loss in ("clip", "siglip") for batch in (16, 128)]
    missing = [key for key in keys if key not in _given(recipes, "recipes")]
    if missing:
        raise NotYet(f"`recipes` has no recipe yet for (loss, batch) = {missing}")
    if not isinstance(short, PretrainConfig):
        raise NotYet("pass the lesson's short recipe, `short`, as the second argument")
    for (loss, batch), recipe in ((key, recipes[key]) for key in keys):
        if not isinstance(recipe, PretrainConfig):
            raise NotYet(f"recipes[{loss!r}, {batch}] should be a recipe made with dataclasses.replace(short, ...), "
                         f"got {type(recipe).__name__}")
        if recipe.batch_size != batch:
            raise NotYet(f"recipes[{loss!r}, {batch}] has batch_size {recipe.batch_size}")
        if recipe.model.loss != loss:
            raise NotYet(f"recipes[{loss!r}, {batch}] trains with the {recipe.model.loss!r} loss: set "
                         "model=dataclasses.replace(short.model, loss=...)")
        if dataclasses.replace(recipe, steps=short.steps, batch_size=short.batch_size, model=short.model) != short:
            raise NotYet(f"recipes[{loss!r}, {batch}] changes more than the steps, the batch size and the loss of "
                         "`short`")
    seen = {key: recipes[key].steps * recipes[key].batch_size for key in keys}
    if len(set(seen.values())) > 1:
        raise NotYet("the four runs do not see the same number of images (steps x batch size): "
                     + ", ".join(f"{loss} at {batch}: {n:,}" for (loss, batch), n in seen.items()))
    if min(recipe.steps for recipe in recipes.values()) < 1:
        raise NotYet("every run needs at least one step")
    return ("four runs that differ only in loss and batch size, each seeing the same images (the accuracies are for "
            "you to compare with the solution)")


_SCENES = [  # (objects, index in SHAPES of the large one): hidden cases for lesson 04, exercise 3
    ([("circle", "red", "small", 0, 0), ("cross", "blue", "large", 1, 1)], 4),
    ([("diamond", "green", "large", 2, 2)], 3),
    ([("square", "red", "small", 0, 1), ("circle", "yellow", "small", 2, 0), ("triangle", "red", "large", 0, 2)], 2),
    ([("square", "purple", "large", 1, 0), ("cross", "blue", "small", 0, 0)], 1),
]


@checker
def check_04_exercise_3(largest_shape: Any) -> str:
    """Lesson 04, exercise 3: the probe's label, the index in data.SHAPES of a scene's large object, on hidden
    scenes."""
    keys = ("shape", "colour", "size", "row", "col")
    for scene, want in _SCENES:
        objects = [dict(zip(keys, values, strict=True)) for values in scene]  # as dataset["objects"] holds them
        got = _call(largest_shape, "largest_shape", objects)
        if isinstance(got, str):
            raise NotYet(f"`largest_shape` returned the name {got!r}: return its index in data.SHAPES, a class label "
                         "for cross-entropy")
        if _number(got, "largest_shape(objects)") != want:
            raise NotYet(f"`largest_shape` is wrong on a scene of {len(objects)} object(s) whose large object is "
                         f"number {[o['size'] for o in objects].index('large')} in the list: pick the object whose "
                         "size is 'large'")
    return ("the labels are right; what the linear and MLP probes read from each representation is for you to compare "
            "with the solution")


@checker
def check_04_exercise_4(tunings: Any, tuning: Any) -> str:
    """Lesson 04, exercise 4: two text tunings that differ from the lesson's only in whole_scene, 0.0 and 1.0."""
    if not isinstance(tuning, TextTuningConfig):
        raise NotYet("pass the lesson's text tuning, `tuning`, as the second argument")
    missing = [w for w in (0.0, 1.0) if w not in _given(tunings, "tunings")]
    if missing:
        raise NotYet(f"`tunings` has no tuning yet for whole_scene = {missing}")
    for whole in (0.0, 1.0):
        given = tunings[whole]
        if not isinstance(given, TextTuningConfig):
            raise NotYet(f"tunings[{whole}] should be made with dataclasses.replace(tuning, ...), got "
                         f"{type(given).__name__}")
        if given.whole_scene != whole:
            raise NotYet(f"tunings[{whole}] has whole_scene = {given.whole_scene}")
        if dataclasses.replace(given, whole_scene=tuning.whole_scene) != tuning:
            raise NotYet(f"tunings[{whole}] changes more than whole_scene: keep the lesson's steps, batch, lr and seed")
    return ("two tunings that differ only in what the text side practises (the accuracies are for you to compare with "
            "the solution)")
