"""Lesson 06's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import math

import torch
from einops import rearrange

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.language import count_parameters, kv_cache_bytes, preset

from .helpers import fails, passes


def test_06_exercise_1(capsys):
    def rope_complex(x, positions, base=10000.0):  # the solution's
        d = x.shape[-1]
        z = torch.complex(x[..., : d // 2], x[..., d // 2:])
        theta = base ** (-torch.arange(0, d, 2).float() / d)
        angle = positions.float()[:, None] * theta
        z = z * torch.polar(torch.ones_like(angle), angle)
        return torch.cat([z.real, z.imag], dim=-1)

    def interleaved(x, positions, base=10000.0):  # pairs (x_0, x_1), (x_2, x_3), ...: another convention
        z = torch.view_as_complex(rearrange(x, "... (p two) -> ... p two", two=2).contiguous())
        theta = base ** (-torch.arange(0, x.shape[-1], 2).float() / x.shape[-1])
        z = z * torch.polar(torch.ones(len(positions), len(theta)), positions.float()[:, None] * theta)
        return rearrange(torch.view_as_real(z), "... p two -> ... (p two)")

    passes(capsys, ex.check_06_exercise_1(rope_complex))
    fails(capsys, ex.check_06_exercise_1(lambda x, positions, base=10000.0: x), "returns its input unchanged")
    fails(capsys, ex.check_06_exercise_1(interleaved), "differs from apply_rope", "pair i is (x_i, x_(i+d/2))")
    fails(capsys, ex.check_06_exercise_1(lambda x, positions: rope_complex(x, positions)),
          "unexpected keyword argument 'base'")
    fails(capsys, ex.check_06_exercise_1(lambda x, positions, base=1e4: torch.complex(x, x)), "return real numbers")


def test_06_exercise_2(capsys):
    mha, gqa = preset("mobilellama-1.4b"), preset("mobilellama-1.4b", num_key_value_heads=4)
    saved = count_parameters(mha) - count_parameters(gqa)
    before, after = (2**30 // kv_cache_bytes(c, 2048) for c in (mha, gqa))
    passes(capsys, ex.check_06_exercise_2(saved, before, after))
    fails(capsys, ex.check_06_exercise_2(-saved, before, after), "turn it around")
    fails(capsys, ex.check_06_exercise_2(saved, 2**30 / kv_cache_bytes(mha, 2048), after), "round down")
    fails(capsys, ex.check_06_exercise_2(saved, before, 4 * before), "`sequences_after`", hidden=(str(after),))


def test_06_exercise_3(capsys):
    def min_p_filter(logits, min_p):  # the solution's
        probs = logits.softmax(-1)
        threshold = min_p * probs.max(dim=-1, keepdim=True).values
        return logits.masked_fill(probs < threshold, -math.inf)

    def global_max(logits, min_p):  # compares against the largest probability of the whole batch
        probs = logits.softmax(-1)
        return logits.masked_fill(probs < min_p * probs.max(), -math.inf)

    def rescaled(logits, min_p):
        return min_p_filter(logits, min_p) - logits.logsumexp(-1, keepdim=True)

    passes(capsys, ex.check_06_exercise_3(min_p_filter))
    fails(capsys, ex.check_06_exercise_3(lambda logits, min_p: logits), "keeps every token")
    fails(capsys, ex.check_06_exercise_3(global_max), "that row's own largest probability")
    fails(capsys, ex.check_06_exercise_3(rescaled), "keep their logits unchanged")
    fails(capsys, ex.check_06_exercise_3(lambda logits, min_p: min_p_filter(logits.mul_(1.0).add_(1.0), min_p)),
          "in place")
