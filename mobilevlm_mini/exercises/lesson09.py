"""Checkers for lesson 09, quantization."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mobilevlm_mini.exercises._checking import NotYet, _close, _given, _number, _tensor, checker
from mobilevlm_mini.quant import GRANULARITIES, QuantLinear, QuantSpec, quantize, quantize_model, size_on_disk


def _int4_llm(model: nn.Module, group_size: int, symmetric: bool = True) -> nn.Module:
    """The model's LLM in int4 with groups of `group_size`, ViT and projector kept in float, as lesson 09 quantizes
    it."""
    return quantize_model(model, bits=4, group_size=group_size, symmetric=symmetric, skip=("vit", "projector")).llm


@checker
def check_09_exercise_1(model: Any, sizes: Any) -> str:
    """Lesson 09, exercise 1: size on disk of the LLM in int4 (groups of 32) with and without zero points."""
    missing = [name for name in ("symmetric", "asymmetric") if name not in _given(sizes, "sizes")]
    if missing:
        raise NotYet(f"`sizes` has no size yet for {missing}")
    got = {name: _number(sizes[name], f"sizes[{name!r}]") for name in ("symmetric", "asymmetric")}
    if got["asymmetric"] <= got["symmetric"]:
        raise NotYet("the asymmetric model should be larger: it stores a uint8 zero point beside each group's scale")
    for name, symmetric in (("symmetric", True), ("asymmetric", False)):
        if got[name] != size_on_disk(_int4_llm(model, 32, symmetric)):
            raise NotYet(f"sizes[{name!r}] is not the size on disk of the LLM quantized to int4 in groups of 32 "
                         f"(symmetric={symmetric}, the ViT and the projector left in float): measure "
                         "size_on_disk(q4.llm)")
    return (f"zero points add {got['asymmetric'] / got['symmetric'] - 1:.1%} to the LLM; whether they pay is for you "
            "to judge from the accuracies")


@checker
def check_09_exercise_2(model: Any, bits_per_weight: Any, agreements: Any, width: Any) -> str:
    """Lesson 09, exercise 2: stored bits per LLM weight for int4 groups of 8, 16, 32, agreements, and the width 64
    does not divide."""
    groups = (8, 16, 32)
    for name, answers in (("bits_per_weight", bits_per_weight), ("agreements", agreements)):
        missing = [g for g in groups if g not in _given(answers, name)]
        if missing:
            raise NotYet(f"`{name}` has no value yet for group sizes {missing}")
    linears = [m for m in model.llm.modules() if isinstance(m, nn.Linear)]
    weights = sum(m.weight.numel() for m in linears)
    for g in groups:
        layers = [m for m in _int4_llm(model, g).modules() if isinstance(m, QuantLinear)]
        want = 8 * sum(m.quantized.nbytes() for m in layers) / weights
        got = _number(bits_per_weight[g], f"bits_per_weight[{g}]")
        if not _close(got, want, 1e-4):
            hint = "count the float16 scales too, " if _close(got, 4.0, 1e-3) else ""
            raise NotYet(f"bits_per_weight[{g}] is not the stored bits per weight of the LLM's Linear layers in int4 "
                         f"groups of {g}: {hint}8 x (bytes of every QuantLinear.quantized) / (weights of those layers)")
        a = _number(agreements[g], f"agreements[{g}]")
        if not 0 <= a <= 1:
            raise NotYet(f"agreements[{g}] = {a} is not a share of answers between 0 and 1 (use quant.agreement)")
    bad = {m.in_features for m in linears if m.in_features % 64}
    w = _number(width, "width")
    if w not in bad:
        raise NotYet(f"64 divides {w:g}: `width` should be the in_features of a layer whose rows cannot be cut into "
                     "groups of 64")
    return ("each halving of the group adds 16 bits of scale per group; a width that 64 does not divide is why "
            "group_size=64 fails")


@checker
def check_09_exercise_3(original: Any, weight: Any, errors: Any) -> str:
    """Lesson 09, exercise 3: one weight set to 20 x the largest magnitude, and the int4 error of the other weights per
    granularity."""
    before, after = _tensor(original, "original"), _tensor(weight, "weight")
    if after.shape != before.shape:
        raise NotYet(f"`weight` has shape {tuple(after.shape)}, expected the gate_proj weight's {tuple(before.shape)}")
    changed = (after != before).nonzero()
    if len(changed) != 1:
        hint = (": clone the weight before you change it, and change one entry" if not len(changed)
                else ": change exactly one")
        raise NotYet(f"`weight` differs from the original in {len(changed)} entries{hint}")
    if not _close(after[tuple(changed[0])].abs().item(), 20 * before.abs().max().item(), 1e-4):
        raise NotYet("the changed weight should be 20 times the largest magnitude of the original weight")
    missing = [g for g in GRANULARITIES if g not in _given(errors, "errors")]
    if missing:
        raise NotYet(f"`errors` has no value yet for {missing}")
    others = torch.ones_like(after, dtype=torch.bool)
    others[tuple(changed[0])] = False
    for g in GRANULARITIES:
        error = quantize(after, QuantSpec(4, True, g, 32)).dequantize() - after
        want = (error[others].norm() / after[others].norm()).item()
        if not _close(_number(errors[g], f"errors[{g!r}]"), want, 1e-3):
            raise NotYet(f"errors[{g!r}] is not the relative int4 error, per {g} (groups of 32), of every weight but "
                         "the outlier: ||w_hat - w|| / ||w|| over the other weights")
    return ("the outlier coarsens the grid of whatever shares its scale: the whole tensor, its row, or its 32-weight "
            "group")
