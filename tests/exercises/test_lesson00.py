"""Lesson 00's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import subprocess
import sys

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.exercises import lesson00
from mobilevlm_mini.patches import num_patches
from mobilevlm_mini.runtime import QUICK_ENV

from .helpers import fails, passes


def test_00_exercise_1(capsys):
    done = subprocess.CompletedProcess([sys.executable, "-m", "mobilevlm_mini", "doctor"], returncode=0)
    passes(capsys, ex.check_00_exercise_1(done, 50))
    failed = subprocess.CompletedProcess(done.args, returncode=1)
    fails(capsys, ex.check_00_exercise_1(failed, 50), "exited with code 1", "FAIL lines")
    fails(capsys, ex.check_00_exercise_1(done, 2000), "MOBILEVLM_MINI_QUICK")
    other = subprocess.CompletedProcess([sys.executable, "-m", "mobilevlm_mini", "--help"], returncode=0)
    fails(capsys, ex.check_00_exercise_1(other, 50), "did not run the `doctor`")


def test_00_exercise_1_wants_quick_mode_restored(capsys, monkeypatch):
    monkeypatch.setenv(QUICK_ENV, "maybe" if lesson00._QUICK_AT_IMPORT != "maybe" else "other")
    done = subprocess.CompletedProcess(["python", "-m", "mobilevlm_mini", "doctor"], returncode=0)
    fails(capsys, ex.check_00_exercise_1(done, 50), "put it back")


def test_00_exercise_2(capsys):
    llava = num_patches(336, 336, 14)
    ratio = (llava + 32) ** 2 / (llava // 4 + 32) ** 2
    passes(capsys, ex.check_00_exercise_2(llava, ratio, num_patches(448, 448, 14) // 4))
    fails(capsys, ex.check_00_exercise_2(144, ratio, 256), "(a)", "MLP projector keeps every token", hidden=("576",))
    fails(capsys, ex.check_00_exercise_2(576, 1 / ratio, 256), "(b)", "turn the ratio around", hidden=("11.9",))
    fails(capsys, ex.check_00_exercise_2(576, 16, 256), "(b)", "32 question tokens")
    fails(capsys, ex.check_00_exercise_2(576, ratio, 1024), "(c)", "1 token in 4", hidden=("256",))


def test_00_exercise_3(capsys):
    torch.manual_seed(0)
    to_llm = nn.Linear(64, 96)

    def project_9x(features):  # the solution's
        pooled = F.avg_pool2d(rearrange(features, "b (h w) d -> b d h w", h=6), 3)
        return to_llm(rearrange(pooled, "b d h w -> b (h w) d"))

    def project_4x(features):  # the lesson's 2 x 2 projector
        pooled = F.avg_pool2d(rearrange(features, "b (h w) d -> b d h w", h=6), 2)
        return to_llm(rearrange(pooled, "b d h w -> b (h w) d"))

    def columns_first(features):
        pooled = F.avg_pool2d(rearrange(features, "b (w h) d -> b d h w", h=6), 3)
        return to_llm(rearrange(pooled, "b d h w -> b (h w) d"))

    passes(capsys, ex.check_00_exercise_3(project_9x, to_llm, 10))
    fails(capsys, ex.check_00_exercise_3(project_4x, to_llm, 10), "2 x 2 projector")
    fails(capsys, ex.check_00_exercise_3(columns_first, to_llm, 10), "rows and columns")
    fails(capsys, ex.check_00_exercise_3(project_9x, to_llm, 15),
          "`tokens_read`", "2 x 2 projector's count", hidden=("10",))
    fails(capsys, ex.check_00_exercise_3(project_9x, to_llm, 22), "`tokens_read`", hidden=("10",))


def test_00_exercise_4(capsys):
    passes(capsys, ex.check_00_exercise_4(0.3, 0.0))
    passes(capsys, ex.check_00_exercise_4(torch.tensor([0.0, -0.2]), torch.zeros(3)))
    fails(capsys, ex.check_00_exercise_4(0.0, 0.0), "encoder's first output token did not change")
    fails(capsys, ex.check_00_exercise_4(0.3, 0.05), "LLM's first output moved")
