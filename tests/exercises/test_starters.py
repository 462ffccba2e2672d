"""Every checker runs on its starter's unfinished answer and says what is missing, never raises."""

import pytest
import torch
from torch import nn

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.contrastive import default_recipe, default_text_tuning
from mobilevlm_mini.data import shapes_tokenizer

from .helpers import fails, raises_not_implemented

STARTERS = {
    "check_00_exercise_1": (None, None),
    "check_00_exercise_2": (None, None, None),
    "check_00_exercise_3": (raises_not_implemented, nn.Linear(64, 96), None),
    "check_00_exercise_4": (None, None),
    "check_01_exercise_1": (None, None, None),
    "check_01_exercise_2": ({}, {}),
    "check_01_exercise_3": (raises_not_implemented,),
    "check_01_exercise_4": (None, None, None),
    "check_02_exercise_1": ({},),
    "check_02_exercise_2": ({},),
    "check_02_exercise_3": (None, None, None),
    "check_02_exercise_4": (None, None),
    "check_03_exercise_1": (None, None),
    "check_03_exercise_2": (None, None),
    "check_03_exercise_3": (raises_not_implemented, None),
    "check_03_exercise_4": (None, None),
    "check_04_exercise_1": ({}, default_recipe(quick=True)),
    "check_04_exercise_2": ({}, None, None),
    "check_04_exercise_3": (raises_not_implemented,),
    "check_04_exercise_4": ({}, default_text_tuning(quick=True)),
    "check_05_exercise_1": (None, None, {}),
    "check_05_exercise_2": ({}, None),
    "check_05_exercise_3": (raises_not_implemented, raises_not_implemented, None),
    "check_06_exercise_1": (lambda x, positions, base=10000.0: x,),
    "check_06_exercise_2": (None, None, None),
    "check_06_exercise_3": (lambda logits, min_p: logits,),
    "check_07_exercise_1": (None, torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long),
                            shapes_tokenizer()),
    "check_07_exercise_2": (None, None, None, None, None),
    "check_08_exercise_1": (raises_not_implemented,),
    "check_09_exercise_1": (None, {}),
    "check_09_exercise_2": (None, {}, {}, None),
    "check_09_exercise_3": (torch.ones(4, 32), torch.ones(4, 32), {}),
    "check_10_exercise_2": (None, None, None),
    "check_11_exercise_1": (lambda num_frames, n: list(range(n)),),
    "check_11_exercise_2": ([], {}, None, {}),
    "check_12_exercise_2": (None, None, None),
    "check_12_exercise_4": (None, None, None),
    "check_13_exercise_1": (raises_not_implemented,),
    "check_13_exercise_2": (raises_not_implemented, None),
    "check_13_exercise_3": (None, None, None, None),
    "check_13_exercise_4": (raises_not_implemented, None),
}


def test_every_checker_has_a_starter_case_and_a_docstring():
    checkers = sorted(name for name in dir(ex) if name.startswith("check_"))
    assert checkers == sorted(STARTERS)
    assert sorted(ex.__all__) == checkers  # the package re-exports every lesson's checkers, and only those
    for name in checkers:
        assert getattr(ex, name).__doc__.startswith("Lesson "), name


@pytest.mark.parametrize("name", sorted(STARTERS))
def test_unfinished_starter_prints_what_is_missing(capsys, name):
    fails(capsys, getattr(ex, name)(*STARTERS[name]))


def test_a_crash_in_the_learners_code_is_reported_not_raised(capsys):
    fails(capsys, ex.check_06_exercise_1(lambda x, positions, base=1.0: x @ x), "`rope_complex(", "raised RuntimeError")
