"""Lesson 04's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import dataclasses

import torch

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.contrastive import ContrastiveModel, default_recipe, default_text_tuning
from mobilevlm_mini.data import SHAPES, generate_dataset
from mobilevlm_mini.zero_shot import zero_shot_largest

from .helpers import fails, passes


def _batch_recipes(short, same_steps: bool = False) -> dict:
    recipes = {}
    for loss in ("clip", "siglip"):  # the solution's
        for batch in (16, 128):
            steps = short.steps if same_steps else short.steps * short.batch_size // batch
            recipes[loss, batch] = dataclasses.replace(short, batch_size=batch, steps=steps,
                                                       model=dataclasses.replace(short.model, loss=loss))
    return recipes


def test_04_exercise_1(capsys):
    short = dataclasses.replace(default_recipe(quick=True), steps=8, batch_size=32)
    recipes = _batch_recipes(short)
    passes(capsys, ex.check_04_exercise_1(recipes, short))
    fails(capsys, ex.check_04_exercise_1(_batch_recipes(short, same_steps=True), short),
          "same number of images", "clip at 16: 128")
    fails(capsys, ex.check_04_exercise_1({**recipes, ("siglip", 16): recipes["clip", 16]}, short), "'clip' loss")
    fails(capsys,
          ex.check_04_exercise_1({**recipes, ("clip", 16): dataclasses.replace(recipes["clip", 16], lr=1e-2)}, short),
          "changes more than")
    fails(capsys, ex.check_04_exercise_1({("clip", 16): recipes["clip", 16]}, short),
          "no recipe yet", "('siglip', 128)")


def test_04_exercise_2(capsys):
    torch.manual_seed(1)
    model = ContrastiveModel(default_recipe(quick=True).model).eval()  # untrained: any accuracy will do
    test = generate_dataset(48, seed=4)
    templates = ("a {colour} {shape}", "{colour} {shape}", "a large {colour} {shape} and small shapes")
    scores = {t: zero_shot_largest(model, test, template=t)["accuracy"] for t in templates}  # the solution's
    assert scores[templates[0]] > 0  # so that a percentage differs from the fraction
    passes(capsys, ex.check_04_exercise_2(scores, model, test))
    fails(capsys, ex.check_04_exercise_2({t: scores[t] for t in templates[:2]}, model, test), "of your own")
    fails(capsys, ex.check_04_exercise_2({t: scores[t] for t in templates[1:]}, model, test),
          "no accuracy yet", "'a {colour} {shape}'")
    fails(capsys, ex.check_04_exercise_2({**scores, "a large {colour} {shape} and other shapes": 0.5}, model, test),
          "['other']", "data.vocabulary()")
    fails(capsys, ex.check_04_exercise_2({**scores, "a large {colour} thing": 0.5}, model, test),
          "{colour} and {shape}")
    fails(capsys, ex.check_04_exercise_2({**scores, templates[2]: scores[templates[2]] + 0.25}, model, test),
          "not the zero-shot accuracy")
    fails(capsys, ex.check_04_exercise_2({**scores, templates[0]: 100 * scores[templates[0]]}, model, test),
          "percentage")
    fails(capsys, ex.check_04_exercise_2(scores, None, test), "second argument")
    fails(capsys, ex.check_04_exercise_2(scores, model, None), "third argument")


def test_04_exercise_3(capsys):
    def largest_shape(objects):  # the solution's
        return SHAPES.index(max(objects, key=lambda o: o["size"] == "large")["shape"])

    passes(capsys, ex.check_04_exercise_3(largest_shape))
    fails(capsys, ex.check_04_exercise_3(lambda objects: SHAPES.index(objects[0]["shape"])),
          "pick the object whose size is 'large'")
    fails(capsys, ex.check_04_exercise_3(lambda objects: next(o["shape"] for o in objects if o["size"] == "large")),
          "index in data.SHAPES")


def test_04_exercise_4(capsys):
    tuning = default_text_tuning(quick=True)
    tunings = {w: dataclasses.replace(tuning, whole_scene=w) for w in (0.0, 1.0)}
    passes(capsys, ex.check_04_exercise_4(tunings, tuning))
    fails(capsys, ex.check_04_exercise_4({0.0: tunings[0.0]}, tuning), "no tuning yet", "[1.0]")
    fails(capsys, ex.check_04_exercise_4({**tunings, 1.0: tunings[0.0]}, tuning), "whole_scene = 0.0")
    fails(capsys, ex.check_04_exercise_4({**tunings, 1.0: dataclasses.replace(tunings[1.0], steps=5)}, tuning),
          "changes more than")
    fails(capsys, ex.check_04_exercise_4(tunings, None), "second argument")
