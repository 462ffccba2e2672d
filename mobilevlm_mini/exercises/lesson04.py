"""Checkers for lesson 04, a tiny ViT and contrastive pretraining."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

from mobilevlm_mini.contrastive import ContrastiveModel, PretrainConfig, TextTuningConfig, encode_texts
from mobilevlm_mini.data import vocabulary
from mobilevlm_mini.exercises._checking import NotYet, _call, _close, _given, _number, checker
from mobilevlm_mini.tokenizer import split_words
from mobilevlm_mini.zero_shot import largest_object_prompts, zero_shot_largest


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


_SUGGESTED = ("a {colour} {shape}", "{colour} {shape}")  # the exercise's two templates
_LESSONS = "a large {colour} {shape}"  # the lesson's own, which does not count as the learner's


def _check_template(template: Any, max_len: int) -> None:
    """NotYet unless `template` is a string with exactly the fields {colour} and {shape}, whose every prompt is made of
    the shapes world's words and fits the text encoder."""
    if not isinstance(template, str):
        raise NotYet(f"the keys of `scores` should be templates (strings), got {type(template).__name__}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise NotYet(f"{template!r} is not a format string: {error}") from None
    if fields != {"colour", "shape"}:
        raise NotYet(f"{template!r} should have the fields {{colour}} and {{shape}} and no other, has "
                     f"{sorted(fields) or 'none'}")
    prompts = largest_object_prompts(template)[0]
    unknown = sorted({word for prompt in prompts for word in split_words(prompt)} - set(vocabulary()))
    if unknown:
        raise NotYet(f"{template!r} uses {unknown}, which the shapes world's captions never contain: the text "
                     "encoder has no token for them (data.vocabulary() lists the words it has)")
    try:
        encode_texts(prompts, max_len)
    except ValueError as error:
        raise NotYet(f"{template!r} does not fit the text encoder: {error}") from None


@checker
def check_04_exercise_2(scores: Any, model: Any, test: Any) -> str:
    """Lesson 04, exercise 2: zero-shot accuracy of the two suggested prompt templates and at least one of the learner's
    own, made of the world's words."""
    if not isinstance(_given(scores, "scores"), dict):
        raise NotYet(f"`scores` should be a dict, template -> zero-shot accuracy, got {type(scores).__name__}")
    missing = [template for template in _SUGGESTED if template not in scores]
    if missing:
        raise NotYet(f"`scores` has no accuracy yet for {missing}")
    own = [template for template in scores if template not in (*_SUGGESTED, _LESSONS)]
    if not own:
        raise NotYet("add at least one template of your own, e.g. the one the exercise suggests")
    if not isinstance(model, ContrastiveModel):
        raise NotYet("pass the lesson's pretrained `model` as the second argument")
    if "objects" not in getattr(test, "column_names", ()):
        raise NotYet("pass the lesson's `test` split as the third argument")
    for template in scores:
        _check_template(template, model.config.text.max_len)
    for template, value in scores.items():
        got = _number(value, f"scores[{template!r}]")
        want = zero_shot_largest(model, test, template=template)["accuracy"]
        if abs(got - want) <= 1e-6:
            continue
        if _close(got, 100 * want, 1e-3):
            raise NotYet(f"scores[{template!r}] looks like a percentage: give the accuracy as a fraction, as "
                         "zero_shot_largest(...)['accuracy'] does")
        raise NotYet(f"scores[{template!r}] is not the zero-shot accuracy of that template on `test`: "
                     "zero_shot.zero_shot_largest(model, test, template=...)['accuracy']")
    return (f"{len(scores)} templates scored, {len(own)} of your own; which words help, and why they might, is "
            "discussed in the solution")


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
