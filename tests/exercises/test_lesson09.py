"""Lesson 09's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import torch
from torch import nn

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.quant import QuantLinear, QuantSpec, agreement, quantize, quantize_model, size_on_disk

from .helpers import fails, passes

KEEP = ("vit", "projector")


def test_09_exercise_1(capsys, vlm):
    sizes = {("symmetric" if s else "asymmetric"):
             size_on_disk(quantize_model(vlm, bits=4, group_size=32, symmetric=s, skip=KEEP).llm)
             for s in (True, False)}  # the solution's
    passes(capsys, ex.check_09_exercise_1(vlm, sizes))
    fails(capsys, ex.check_09_exercise_1(vlm, {"symmetric": sizes["asymmetric"], "asymmetric": sizes["symmetric"]}),
          "should be larger")
    whole = size_on_disk(quantize_model(vlm, bits=4, group_size=32, symmetric=False, skip=KEEP))
    fails(capsys, ex.check_09_exercise_1(vlm, dict(sizes, asymmetric=whole)),
          "sizes['asymmetric']", "size_on_disk(q4.llm)")
    fails(capsys, ex.check_09_exercise_1(vlm, {"symmetric": 1}), "['asymmetric']")


def test_09_exercise_2(capsys, vlm):
    linears = {name: m for name, m in vlm.llm.named_modules() if isinstance(m, nn.Linear)}
    in_linears = sum(m.weight.numel() for m in linears.values())
    bits, agreements = {}, {}
    for group in (8, 16, 32):  # the solution's
        q4 = quantize_model(vlm, bits=4, group_size=group, skip=KEEP)
        layers = [m for m in q4.llm.modules() if isinstance(m, QuantLinear)]
        bits[group] = 8 * sum(m.quantized.nbytes() for m in layers) / in_linears
        agreements[group] = agreement(["a", "b"], ["a", "a"])
    width = next(m.in_features for m in linears.values() if m.in_features % 64)
    passes(capsys, ex.check_09_exercise_2(vlm, bits, agreements, width))
    fails(capsys, ex.check_09_exercise_2(vlm, {g: 4.0 for g in bits}, agreements, width),
          "count the float16 scales too")
    fails(capsys, ex.check_09_exercise_2(vlm, {**bits, 8: bits[32]}, agreements, width), "bits_per_weight[8]")
    fails(capsys, ex.check_09_exercise_2(vlm, bits, {**agreements, 16: 50.0}, width), "between 0 and 1")
    fails(capsys, ex.check_09_exercise_2(vlm, bits, agreements, 128), "64 divides 128")


def test_09_exercise_3(capsys, vlm):
    original = vlm.llm.model.layers[0].mlp.gate_proj.weight
    weight = original.detach().clone()  # the solution's
    row, col = 5, 7
    weight[row, col] = 20 * weight.abs().max()
    others = torch.ones_like(weight, dtype=torch.bool)
    others[row, col] = False
    errors = {}
    for g in ("tensor", "channel", "group"):
        error = (quantize(weight, QuantSpec(4, True, g, 32)).dequantize() - weight).abs()
        errors[g] = (error[others].norm() / weight[others].norm()).item()
    passes(capsys, ex.check_09_exercise_3(original, weight, errors))
    fails(capsys, ex.check_09_exercise_3(original, original.detach().clone(), errors), "in 0 entries", "clone")
    doubled = original.detach().clone()
    doubled[row, col] = 2 * doubled.abs().max()
    fails(capsys, ex.check_09_exercise_3(original, doubled, errors), "20 times the largest magnitude")
    everything = dict(errors, channel=((quantize(weight, QuantSpec(4, True, "channel")).dequantize() - weight).norm()
                                       / weight.norm()).item())
    fails(capsys, ex.check_09_exercise_3(original, weight, everything),
          "errors['channel']", "every weight but the outlier")
    fails(capsys, ex.check_09_exercise_3(original, weight, {"tensor": 1.0}), "['channel', 'group']")
