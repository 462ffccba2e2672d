"""Lesson 02's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import math

import torch
from einops import reduce

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.attention import attention, causal_mask
from mobilevlm_mini.exercises import lesson02
from mobilevlm_mini.patches import patchify, sincos_2d
from mobilevlm_mini.photos import load_sample_photo

from .helpers import fails, passes


def _grad_norms(scale_power: float = 0.5) -> dict:
    torch.manual_seed(0)
    g, norms = torch.randn(64), {}
    for d in (4, 64, 1024):  # the solution's loop, with the scale's power as a knob for wrong answers
        q, k = torch.randn(256, d), torch.randn(64, d)
        for scaled in (False, True):
            s = q @ k.T / (d**scale_power if scaled else 1.0)
            s.requires_grad_(True)
            (s.softmax(dim=-1) * g).sum().backward()
            norms[d, scaled] = s.grad.norm(dim=-1).median().item()
    return norms


def test_02_exercise_1(capsys):
    norms = _grad_norms()
    passes(capsys, ex.check_02_exercise_1(norms))
    fails(capsys, ex.check_02_exercise_1(_grad_norms(scale_power=0.1)), "same size at every d")
    swapped = {(d, scaled): norms[d, not scaled] for d, scaled in norms}
    fails(capsys, ex.check_02_exercise_1(swapped), "divide the scores by sqrt(d)")
    fails(capsys, ex.check_02_exercise_1({key: 16 * value for key, value in norms.items()}), "median over the rows")
    fails(capsys, ex.check_02_exercise_1({(4, True): 0.1}), "no value yet", "(1024, False)")


def _face_maps(alphas=(0.0, 0.75, 1.25), normalise_rows: bool = True) -> dict:
    P, tau, side = 14, 0.1, 16  # the solution's construction
    photo = load_sample_photo(224)
    pixels = patchify(photo[None], P)[0]
    colour = reduce(pixels, "n (pq c) -> n c", "mean", c=3)
    feat = colour - colour.mean(dim=0)
    feat = feat / feat.norm(dim=-1, keepdim=True)
    pos = sincos_2d(side, side, 16)
    pos = pos / pos.norm(dim=-1, keepdim=True)
    maps = {}
    for alpha in alphas:
        f = torch.cat([feat, alpha * pos], dim=-1)
        _, w = attention(f * math.sqrt(f.shape[-1]) / tau, f, pixels)
        maps[alpha] = w[6 * side + 8] if normalise_rows else w[6 * side + 8] * 2
    return maps


def test_02_exercise_2(capsys):
    maps = _face_maps()
    passes(capsys, ex.check_02_exercise_2(maps))
    fails(capsys, ex.check_02_exercise_2(_face_maps(normalise_rows=False)), "do not sum to 1 over the keys")
    fails(capsys,
          ex.check_02_exercise_2(_face_maps(alphas=(0.0, 0.75, 1.25)[::-1]) | {0.0: maps[1.25], 1.25: maps[0.0]}),
          "gather around the face")
    fails(capsys, ex.check_02_exercise_2({0.0: maps[0.0]}), "no map yet for alpha = [0.75, 1.25]")
    fails(capsys, ex.check_02_exercise_2({a: m[:100] for a, m in maps.items()}), "one per patch (256)")


def test_02_exercise_3(capsys):
    torch.manual_seed(0)
    mask = causal_mask(2, 6)
    q, k, v = torch.randn(3, 6, 8).unbind(0)  # the solution's
    full, _ = attention(q, k, v, causal_mask(6))
    last_two, _ = attention(q[-2:], k, v, mask)
    passes(capsys, ex.check_02_exercise_3(mask, last_two, full))
    fails(capsys, ex.check_02_exercise_3(causal_mask(2), last_two, full), "(2, 6)")
    fails(capsys, ex.check_02_exercise_3(torch.ones(2, 6, dtype=torch.bool).tril(), last_two, full),
          "positions 4 and 5")
    fails(capsys, ex.check_02_exercise_3(mask.int(), last_two, full), "boolean")
    unmasked, _ = attention(q[-2:], k, v)
    fails(capsys, ex.check_02_exercise_3(mask, unmasked + 1, full), "differs from the last 2 rows of `full`")


def test_02_exercise_4(capsys):
    budget = 8 * 2**30
    side = 14
    while lesson02._attention_bytes(side + 14) <= budget:  # the solution's search
        side += 14
    passes(capsys, ex.check_02_exercise_4(side, (side // 14) ** 2))
    fails(capsys, ex.check_02_exercise_4(side - 14, (side // 14 - 1) ** 2), "a larger side", hidden=(str(side),))
    fails(capsys, ex.check_02_exercise_4(side + 14, (side // 14 + 1) ** 2), "more than 8 GiB")
    fails(capsys, ex.check_02_exercise_4(800, 3265), "multiple of 14")
    fails(capsys, ex.check_02_exercise_4(side, side // 14), "`tokens`")
