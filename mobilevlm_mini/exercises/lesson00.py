"""Checkers for lesson 00, setup and the map."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mobilevlm_mini.exercises._checking import NotYet, _call, _close, _given, _number, _tensor, checker
from mobilevlm_mini.runtime import QUICK_ENV

_QUICK_AT_IMPORT = os.environ.get(QUICK_ENV)  # lesson 00, exercise 1 asks the learner to put it back


@checker
def check_00_exercise_1(doctor: Any, in_quick: Any) -> str:
    """Lesson 00, exercise 1: the doctor ran as its own process and passed; steps() followed MOBILEVLM_MINI_QUICK."""
    _given(doctor, "doctor")
    args = getattr(doctor, "args", None)
    if args is not None and "doctor" not in " ".join(map(str, args if isinstance(args, (list, tuple)) else [args])):
        raise NotYet("your process did not run the `doctor` sub-command of `python -m mobilevlm_mini`")
    code = getattr(doctor, "returncode", doctor)
    if not isinstance(code, int):
        raise NotYet("`doctor` should be what subprocess.run(...) returns (or its return code)")
    if code != 0:
        raise NotYet(f"the doctor exited with code {code}: print its output and fix its FAIL lines")
    if _number(in_quick, "in_quick") != 50:
        raise NotYet("`in_quick` is not what steps(2000, 50) returns in quick mode: set os.environ"
                     "['MOBILEVLM_MINI_QUICK'] = '1' before you call steps()")
    now = os.environ.get(QUICK_ENV)
    if now != _QUICK_AT_IMPORT:
        raise NotYet(f"MOBILEVLM_MINI_QUICK is now {now!r} but was {_QUICK_AT_IMPORT!r}: put it back (pop it if it "
                     "was not set), or the rest of the notebook runs in another mode")
    return "the doctor passes, and quick mode is read from the environment at every call"


@checker
def check_00_exercise_2(llava_tokens: Any, ratio: Any, tokens_448: Any) -> str:
    """Lesson 00, exercise 2: LLaVA-1.5's visual tokens, its attention-score ratio to MobileVLM, tokens at 448 px."""
    full = (336 // 14) ** 2
    llava = _number(llava_tokens, "llava_tokens")
    if llava != full:
        hint = " (keeping 1 in 4 is LDP's trick; an MLP projector keeps every token)" if llava == full // 4 else ""
        raise NotYet(f"(a) is not right{hint}: count the 14 x 14 patches of a 336 x 336 image")
    r, want = _number(ratio, "ratio"), (full + 32) ** 2 / (full // 4 + 32) ** 2
    if not _close(r, want):
        if _close(r, 1 / want):
            hint = "you divided MobileVLM's count by LLaVA's: turn the ratio around"
        elif _close(r, 16.0):
            hint = "the 32 question tokens belong in both sequences"
        elif _close(r, (full + 32) / (full // 4 + 32)):
            hint = "that is the ratio of sequence lengths, but attention scores every pair of tokens"
        else:
            hint = "count a prefill's attention scores per layer and head from each model's sequence length"
        raise NotYet(f"(b) is not right: {hint}")
    n = _number(tokens_448, "tokens_448")
    if n != (448 // 14) ** 2 // 4:
        hint = ("LDP keeps 1 token in 4" if n == (448 // 14) ** 2
                else "count the 14 x 14 patches of a 448 x 448 image, then apply LDP")
        raise NotYet(f"(c) is not right: {hint}")
    return "(a), (b) and (c) are right (the drawing is not checked: compare it with the solution)"


@checker
def check_00_exercise_3(project_9x: Any, to_llm: Any, tokens_read: Any) -> str:
    """Lesson 00, exercise 3: a projector that averages 3 x 3 blocks of the 6 x 6 grid, and the LLM's input length."""
    if not isinstance(to_llm, nn.Linear):
        raise NotYet("pass the smoke run's `to_llm` layer as the second argument")
    features = torch.randn(2, 36, to_llm.in_features, generator=torch.Generator().manual_seed(0))  # (B, 6*6, D_v)
    with torch.no_grad():
        got = _tensor(_call(project_9x, "project_9x", features), "project_9x(features)")
        grid = rearrange(features, "b (h w) d -> b d h w", h=6)
        want = to_llm(rearrange(F.avg_pool2d(grid, 3), "b d h w -> b (h w) d"))  # (B, 4, D_t)
    if got.shape != want.shape:
        hint = ": that is still the 2 x 2 projector's count" if got.ndim == 3 and got.shape[1] == 9 else ""
        raise NotYet(f"project_9x turned (2, 36, {to_llm.in_features}) encoder tokens into shape {tuple(got.shape)}, "
                     f"expected (B, 4, {to_llm.out_features}){hint}")
    if not torch.allclose(got, want, atol=1e-5):
        raise NotYet("the shapes are right but the values are not `to_llm` of the averages of the 3 x 3 blocks of the "
                     "6 x 6 grid: check how tokens map to grid rows and columns (row by row) and that you average, "
                     "not sum")
    n = _number(tokens_read, "tokens_read")
    if n != 4 + 6:
        hint = ("that is the 2 x 2 projector's count" if n == 9 + 6
                else "add up the image tokens and the question's words")
        raise NotYet(f"`tokens_read` is not how many tokens the LLM now reads: {hint}")
    return ("4 image tokens + 6 question words reach the LLM; the same `to_llm` works, since pooling changes the "
            "count, not the width")


def _largest_change(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor):
        return value.detach().abs().max().item()
    return abs(_number(value, name))


@checker
def check_00_exercise_4(vit_shift: Any, llm_shift: Any) -> str:
    """Lesson 00, exercise 4: the encoder's first token moves with the last patch; the LLM's first position does not."""
    vit, llm = _largest_change(vit_shift, "vit_shift"), _largest_change(llm_shift, "llm_shift")
    if vit < 1e-4:
        raise NotYet("the encoder's first output token did not change: change only the last patch of the image, then "
                     "compare token 0 of encode(...) before and after")
    if llm > 1e-5:
        raise NotYet(f"the LLM's first output moved by {llm:.3g}: change only the last question word, keep everything "
                     "before it the same, and compare position 0 of llm(...) before and after")
    return ("token 0 of the bidirectional encoder sees the last patch; position 0 of the causal LLM never sees the "
            "future")
