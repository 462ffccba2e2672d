"""Checkers for lesson 06, a tiny MobileLLaMA."""

from __future__ import annotations

import math
from typing import Any

import torch

from mobilevlm_mini.exercises._checking import NotYet, _call, _number, _tensor, checker
from mobilevlm_mini.language import apply_rope, kv_cache_bytes, preset, rope_cos_sin
from mobilevlm_mini.language import count_parameters as llm_parameters


@checker
def check_06_exercise_1(rope_complex: Any) -> str:
    """Lesson 06, exercise 1: RoPE as complex multiplication agrees with apply_rope on hidden shapes, positions and
    bases."""
    generator = torch.Generator().manual_seed(6)
    for shape, positions, base in [((6, 16), torch.arange(6), None), ((2, 4, 9, 32), torch.arange(3, 12), None),
                                   ((5, 8), torch.arange(5), 500.0)]:
        x = torch.randn(*shape, generator=generator)
        before = x.clone()
        options = {} if base is None else {"base": base}
        got = _tensor(_call(rope_complex, "rope_complex", x, positions, **options), "rope_complex(x, positions)")
        if got.is_complex():
            raise NotYet("return real numbers: real parts in the first half of the last dimension, imaginary parts in "
                         "the second")
        if not torch.equal(x, before):
            raise NotYet("rope_complex changed its input in place: compute a new tensor")
        if got.shape != x.shape:
            raise NotYet(f"for x of shape {shape}, rope_complex returned shape {tuple(got.shape)}: a rotation keeps "
                         "the shape")
        cos, sin = rope_cos_sin(positions, shape[-1], theta=base or 10000.0)
        if not torch.allclose(got, apply_rope(x, cos, sin), atol=1e-4):
            if torch.allclose(got, x):
                raise NotYet("rope_complex returns its input unchanged: it does not rotate yet")
            where = f"x of shape {shape}, positions {positions[0]}..{positions[-1]}" + (", base "
                                                                                        f"{base:g}" if base else "")
            raise NotYet(f"rope_complex differs from apply_rope for {where}: pair i is (x_i, x_(i+d/2)) and turns by "
                         "position * base^(-2i/d)")
    return "multiplying pair i by e^(i m theta_i) is exactly apply_rope's rotation"


@checker
def check_06_exercise_2(saved: Any, sequences_before: Any, sequences_after: Any) -> str:
    """Lesson 06, exercise 2: parameters saved by 4 key/value heads in MobileLLaMA 1.4B, and 2048-token sequences per
    GiB of cache."""
    mha, gqa = preset("mobilellama-1.4b"), preset("mobilellama-1.4b", num_key_value_heads=4)
    want = llm_parameters(mha) - llm_parameters(gqa)
    got = _number(saved, "saved")
    if got != want:
        hint = "turn it around: before minus after" if got == -want else "compare count_parameters of the two configs"
        raise NotYet(f"`saved` is not the number of parameters the 4-head version saves: {hint}")
    for name, value, config in (("sequences_before", sequences_before, mha), ("sequences_after", sequences_after, gqa)):
        n, per_sequence = _number(value, name), kv_cache_bytes(config, 2048)
        if n != 2**30 // per_sequence:
            hint = "count whole sequences (round down)" if math.isclose(n, 2**30 / per_sequence) else \
                "divide 1 GiB (2**30 bytes) by one 2048-token sequence's fp16 cache, kv_cache_bytes(config, 2048)"
            raise NotYet(f"`{name}` is not right: {hint}")
    return "only k_proj and v_proj shrink, and the cache holds about 4 times as many sequences"


@checker
def check_06_exercise_3(min_p_filter: Any) -> str:
    """Lesson 06, exercise 3: min-p filtering on hidden logits (one distribution or a batch, several min_p)."""
    generator = torch.Generator().manual_seed(7)
    batch = 3 * torch.randn(3, 50, generator=generator)
    cases = [(torch.tensor([0.5, 0.3, 0.11, 0.06, 0.03]).log(), 0.1), (batch, 0.05), (batch, 0.3),
             (2 * torch.randn(7, generator=generator), 0.0), (torch.randn(4, 9, generator=generator), 1.0)]
    for logits, min_p in cases:
        before = logits.clone()
        got = _tensor(_call(min_p_filter, "min_p_filter", logits, min_p), "min_p_filter(logits, min_p)")
        if not torch.equal(logits, before):
            raise NotYet("min_p_filter changed the logits in place: return a new tensor")
        if got.shape != logits.shape:
            raise NotYet(f"for logits of shape {tuple(logits.shape)}, min_p_filter returned shape {tuple(got.shape)}")
        probs = logits.softmax(dim=-1)
        keep = probs >= min_p * probs.max(dim=-1, keepdim=True).values
        kept = got > -math.inf
        case = f"logits of shape {tuple(logits.shape)} and min_p = {min_p}"
        if kept.all() and not keep.all():
            raise NotYet(f"for {case}, min_p_filter keeps every token: set to -inf the tokens whose probability is "
                         "below min_p times the largest probability")
        if not torch.equal(kept, keep):
            raise NotYet(f"for {case}, min_p_filter keeps {int(kept.sum())} tokens, which is wrong: compare each row's "
                         "probabilities with min_p times that row's own largest probability")
        if not torch.equal(got[keep], logits[keep]):
            raise NotYet("the tokens you keep must keep their logits unchanged")
    return "min_p_filter keeps exactly the right tokens on every hidden case: now compare what it keeps with top-p 0.9"
