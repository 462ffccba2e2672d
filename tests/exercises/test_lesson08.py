"""Lesson 08's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import torch

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.data import COARSE_TYPES, FINE_TYPES

from .helpers import fails, passes


def test_08_exercise_1(capsys):
    def per_image(records, kinds, n_images=16):  # the solution's, with its test split's size as a default
        right, asked = torch.zeros(n_images), torch.zeros(n_images)
        for r in records:
            if r["type"] in kinds:
                right[r["image"]] += r["answer"] == r["predicted"]
                asked[r["image"]] += 1
        return right, asked

    def every_type(records, kinds):
        return per_image(records, COARSE_TYPES + FINE_TYPES)

    def asked_for_right(records, kinds):
        right, asked = per_image(records, kinds)
        return right, right

    passes(capsys, ex.check_08_exercise_1(per_image))
    passes(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds, n_images=4)))
    fails(capsys, ex.check_08_exercise_1(every_type), "questions asked per image are wrong for kinds=COARSE_TYPES")
    fails(capsys, ex.check_08_exercise_1(asked_for_right), "questions asked")
    fails(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds)[::-1]), "questions asked")
    fails(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds, n_images=2)),
          "raised IndexError")
    fails(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds)[0]), "two tensors")
