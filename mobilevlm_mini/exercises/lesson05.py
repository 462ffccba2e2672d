"""Checkers for lesson 05, projectors and token reduction."""

from __future__ import annotations

import math
from typing import Any

import torch

from mobilevlm_mini.analysis import trainable_parameters
from mobilevlm_mini.exercises._checking import NotYet, _call, _given, _ints, _number, checker
from mobilevlm_mini.projectors import PixelShuffle, PoolProjector, build_projector


@checker
def check_05_exercise_1(pool: Any, pixel_shuffle: Any, real_params: Any) -> str:
    """Lesson 05, exercise 1: pooling and pixel shuffle that keep 1 token in 9, and their parameters at 1024 -> 2048."""
    generator = torch.Generator().manual_seed(5)
    for name, projector, kind in (("pool", pool, PoolProjector), ("pixel_shuffle", pixel_shuffle, PixelShuffle)):
        if type(_given(projector, name)) is not kind:
            raise NotYet(f"`{name}` should be built with build_projector({name!r}, ...), got "
                         f"{type(projector).__name__}")
        x = torch.randn(2, 576, projector.vision_dim, generator=generator)  # (B, 24*24, D_v)
        with torch.no_grad():
            out = _call(projector, name, x)
        if out.shape[1] != 64:
            raise NotYet(f"`{name}` turns 576 tokens into {out.shape[1]}: a 9x reduction keeps 1 token in 9 (the "
                         "`factor` option)")
    mlp = 1024 * 2048 + 2048 + 2048 * 2048 + 2048
    wanted = {"pool": mlp, "pixel_shuffle": 9 * 1024 * 2048}
    missing = [name for name in wanted if name not in _given(real_params, "real_params")]
    if missing:
        raise NotYet(f"`real_params` has no count yet for {missing}")
    for name, want in wanted.items():
        if _number(real_params[name], f"real_params[{name!r}]") != want:
            raise NotYet(f"real_params[{name!r}] is not the parameter count of that projector at 1024 -> 2048 with "
                         "factor 3: count it with trainable_parameters")
    return ("both keep 64 of 576 tokens; pooling adds no parameters, pixel shuffle's Linear grows with s^2 (what a 9x "
            "cut does on the course's 6 x 6 grid is discussed in the solution)")


# (read by 65, shared with 66) on a 24 x 24 grid
_WINDOWS = {"ldp": (25, 15), "ldpv2": (36, 24), "pool": (4, 0), "pixel_shuffle": (4, 0)}


@checker
def check_05_exercise_2(counts: Any, disjoint: Any) -> str:
    """Lesson 05, exercise 2: on a 24 x 24 grid, input tokens read by output token 65, and shared with token 66, per
    projector and for a disjoint LDP."""
    missing = [name for name in _WINDOWS if name not in _given(counts, "counts")]
    if missing:
        raise NotYet(f"`counts` has no (read, shared) pair yet for {missing}")
    answers = {name: (_ints(counts[name], f"counts[{name!r}]"), want) for name, want in _WINDOWS.items()}
    answers["the disjoint LDP"] = (_ints(disjoint, "disjoint"), (16, 8))
    for name, ((read, shared), (want_read, want_shared)) in answers.items():
        if read != want_read:
            more = "more" if want_read > read else "fewer"
            raise NotYet(f"{name}: output token 65 reads {more} input tokens than {read}: count the tokens whose "
                         "influence (influence_map) is above 1% of that map's maximum")
        if shared != want_shared:
            raise NotYet(f"{name}: the number of input tokens that output tokens 65 and 66 both read is not {shared}")
    return ("all five counts are right: now use them to say which design lets a small shape on a border reach both "
            "tokens")


@checker
def check_05_exercise_3(ldp_params: Any, ldpv2_params: Any, width: Any) -> str:
    """Lesson 05, exercise 3: LDP's and LDPv2's parameter formulas on hidden sizes, and the width where LDP passes
    100M."""
    for d_v, c in [(1024, 2048), (128, 128), (64, 256), (96, 64), (48, 160)]:
        for name, formula, projector in (("ldp_params", ldp_params, "ldp"), ("ldpv2_params", ldpv2_params, "ldpv2")):
            got = _call(formula, name, d_v, c)
            if got != trainable_parameters(build_projector(projector, d_v, c)):
                raise NotYet(f"{name}({d_v}, {c}) does not match trainable_parameters(build_projector({projector!r}, "
                             f"{d_v}, {c})): write the formula term by term and compare each term with the module's "
                             "named_parameters()")
    w = _number(width, "width")
    # LDP(1024 -> C) has 4 C^2 + 1054.5 C parameters (squeeze width C/4): the C where that reaches 100M
    exact = (-1054.5 + math.sqrt(1054.5**2 + 16e8)) / 8
    if w < 0.99 * exact:
        raise NotYet(f"at LLM width {w:g} LDP still has fewer than 100M parameters: go wider")
    if w > 1.01 * exact:
        raise NotYet(f"LDP passes 100M parameters well below width {w:g}: find the first width where it does")
    return ("both formulas match trainable_parameters on every hidden size, and the width is right: now see which term "
            "dominates")
