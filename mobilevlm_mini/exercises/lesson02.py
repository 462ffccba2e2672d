"""Checkers for lesson 02, self-attention."""

from __future__ import annotations

import math
from typing import Any

import torch

from mobilevlm_mini.attention import causal_mask
from mobilevlm_mini.exercises._checking import NotYet, _given, _number, _tensor, checker


@checker
def check_02_exercise_1(grad_norms: Any) -> str:
    """Lesson 02, exercise 1: median gradient norms of the scores, with and without 1/sqrt(d), for d = 4, 64, 1024."""
    dims = (4, 64, 1024)
    keys = [(d, scaled) for d in dims for scaled in (False, True)]
    missing = [key for key in keys if key not in _given(grad_norms, "grad_norms")]
    if missing:
        raise NotYet(f"`grad_norms` has no value yet for (d, scaled) = {missing}")
    g = {key: _number(grad_norms[key], f"grad_norms[{key}]") for key in keys}
    if any(not math.isfinite(v) or v < 0 for v in g.values()):
        raise NotYet("gradient norms are finite and never negative: check your values")
    raw, scaled = [g[d, False] for d in dims], [g[d, True] for d in dims]
    if max(scaled) > 2 * min(scaled):
        raise NotYet(f"with the 1/sqrt(d) scale the gradient should keep about the same size at every d, yours goes "
                     f"from {min(scaled):.3g} to {max(scaled):.3g}: divide the scores by sqrt(d) in the scaled runs")
    if not raw[0] > raw[1] > raw[2]:
        raise NotYet("without the scale the gradient should shrink as d grows (the softmax saturates): check the "
                     "unscaled runs")
    if raw[2] > 0.25 * scaled[2]:
        raise NotYet(f"without the scale, the gradient at d = 1024 should nearly vanish; yours is still "
                     f"{raw[2] / scaled[2]:.0%} of the scaled one")
    if not all(0.03 < v < 1.0 for v in scaled):
        raise NotYet("your scaled gradient norms are far from the size of one row's gradient: take the norm of each "
                     "row of s.grad (dim=-1) and the median over the rows, with g of 64 standard-normal numbers")
    return "unscaled, the softmax saturates and its gradient vanishes as d grows; the 1/sqrt(d) scale keeps it alive"


@checker
def check_02_exercise_2(face_maps: Any) -> str:
    """Lesson 02, exercise 2: the face query's attention over the 256 patches becomes local as alpha grows."""
    alphas = (0.0, 0.75, 1.25)
    maps = {float(alpha): value for alpha, value in _given(face_maps, "face_maps").items()}
    missing = [alpha for alpha in alphas if alpha not in maps]
    if missing:
        raise NotYet(f"`face_maps` has no map yet for alpha = {missing}")
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    distance = ((rows - 6) ** 2 + (cols - 8) ** 2).float().sqrt().flatten()  # (256,) patches from the face, (6, 8)
    spread = []
    for alpha in alphas:
        w = _tensor(maps[alpha], f"face_maps[{alpha}]").float()
        if w.numel() != 256:
            raise NotYet(f"face_maps[{alpha}] has shape {tuple(w.shape)}: give the face query's weights, one per patch "
                         "(256)")
        w = w.flatten()
        if (w < 0).any():
            raise NotYet(f"face_maps[{alpha}] has negative entries: attention weights never are")
        if not math.isclose(w.sum().item(), 1.0, abs_tol=1e-3):
            raise NotYet(f"your attention weights for alpha = {alpha} do not sum to 1 over the keys (the 256 patches)")
        spread.append((w * distance).sum().item())
    if not spread[0] > spread[1] > spread[2] or spread[2] > 0.6 * spread[0]:
        raise NotYet("the face query's attention should gather around the face as alpha grows (its mean distance from "
                     "the face patch, in patches, "
                     "is " + ", ".join(f"{s:.2f}" for s in spread) + "): scale the unit-length "
                     "positions to length alpha and keep the colour head's temperature")
    return ("as alpha grows, where a patch is counts more than its colour and the map gathers around the face (the "
            "maps are not checked)")


@checker
def check_02_exercise_3(mask: Any, last_two: Any, full: Any) -> str:
    """Lesson 02, exercise 3: causal_mask(2, 6), and masked attention of the 2 newest queries = last 2 rows of full
    attention."""
    got = _tensor(mask, "mask")
    if got.dtype != torch.bool:
        raise NotYet("`mask` should be boolean (True = may attend), as causal_mask returns")
    if got.shape != (2, 6):
        raise NotYet(f"`mask` has shape {tuple(got.shape)}: expected one row per new query and one column per key, (2, "
                     "6)")
    if not torch.equal(got, causal_mask(6)[-2:]):
        raise NotYet("the two new queries are positions 4 and 5 of 6: each may see every key up to its own position")
    new, everything = _tensor(last_two, "last_two"), _tensor(full, "full")
    if everything.ndim < 2 or everything.shape[-2] != 6:
        raise NotYet(f"`full` has shape {tuple(everything.shape)}: it should be the output of 6 x 6 causal attention, "
                     "one row per query")
    if new.shape[:-2] != everything.shape[:-2] or new.shape[-2:] != (2, everything.shape[-1]):
        raise NotYet(f"`last_two` has shape {tuple(new.shape)}: it should be 2 rows (the new queries) as wide as "
                     "`full`'s")
    if not torch.allclose(new, everything[..., -2:, :], atol=1e-5):
        raise NotYet("`last_two` differs from the last 2 rows of `full`: use the same keys and values, only the last 2 "
                     "queries, and `mask`")
    return "the newest queries need only their own rows of the mask: that is what a KV cache computes at each step"


def _attention_bytes(side: int) -> int:
    """Attention matrices of CLIP ViT-L/14 (24 layers x 16 heads) at `side` px, fp16."""
    n = (side // 14) ** 2
    return 24 * 16 * n * n * 2


@checker
def check_02_exercise_4(side: Any, tokens: Any) -> str:
    """Lesson 02, exercise 4: the largest image side whose ViT-L/14 attention matrices fit in 8 GiB, and its tokens."""
    s, budget = _number(side, "side"), 8 * 2**30
    if s != int(s) or int(s) % 14:
        raise NotYet(f"the side should be a whole multiple of 14 (the patch size), got {side}")
    s = int(s)
    if _attention_bytes(s) > budget:
        raise NotYet(f"at {s} px the attention matrices of 24 layers x 16 heads need "
                     f"{_attention_bytes(s) / 2**30:.1f} GiB in fp16, more than 8 GiB")
    if _attention_bytes(s + 14) <= budget:
        raise NotYet(f"a larger side than {s} px still fits in 8 GiB: keep going up in steps of 14")
    if _number(tokens, "tokens") != (s // 14) ** 2:
        raise NotYet(f"`tokens` should be the number of 14 x 14 patches of a {s} x {s} image")
    return f"{s} px is the largest side that fits: memory grows with the 4th power of the side"
