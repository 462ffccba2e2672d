"""Checkers for lesson 01, patch embedding."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from mobilevlm_mini.exercises._checking import NotYet, _call, _given, _ints, _number, _tensor, checker
from mobilevlm_mini.patches import PatchEmbed, patchify, sincos_1d, sincos_2d
from mobilevlm_mini.photos import load_sample_photo


@checker
def check_01_exercise_1(tokens: Any, row_col: Any, pos: Any) -> str:
    """Lesson 01, exercise 1: patches of the 48 x 72 crop, where token 10 sits, and its 2-D sin-cos embeddings."""
    image = load_sample_photo(72)[:, 12:60, :]  # (3, 48, 72), the exercise's crop
    want = patchify(image[None], 8)  # (1, N, 192)
    got = _tensor(tokens, "tokens")
    got = got[None] if got.ndim == 2 else got
    if got.ndim != 3 or got.shape[0] != 1:
        raise NotYet(f"`tokens` has shape {tuple(got.shape)}: expected (1, N, P*P*C) for one image")
    if got.shape[-1] != want.shape[-1]:
        raise NotYet(f"each token should hold every number of one 8 x 8 patch of 3 colours, yours hold {got.shape[-1]}")
    if got.shape[1] != want.shape[1]:
        raise NotYet(f"you have {got.shape[1]} tokens: count the 8 x 8 patches down the 48 rows and across the 72 "
                     "columns")
    if not torch.allclose(got, want):
        raise NotYet("`tokens` does not hold the crop's patches in reading order (row by row, each patch flattened "
                     "as (P, P, C)): cut the crop itself, `image`, into 8 x 8 patches")
    if _ints(row_col, "row_col") != divmod(10, 72 // 8):
        raise NotYet("token 10 is not at that place: tokens go row by row, and one row of this grid has as many "
                     "tokens as there are patches across the image's width")
    p = _tensor(pos, "pos")
    if p.ndim != 2 or p.shape[0] != want.shape[1]:
        raise NotYet(f"`pos` has shape {tuple(p.shape)}: one embedding (a row) per token is needed")
    if p.shape[1] % 4:
        raise NotYet(f"2-D sin-cos embeddings need a width divisible by 4, yours is {p.shape[1]}")
    if torch.allclose(p, sincos_2d(9, 6, p.shape[1])):
        raise NotYet("`pos` swaps the grid's height and width: sincos_2d(grid_h, grid_w, dim) takes the rows first")
    if not torch.allclose(p, sincos_2d(6, 9, p.shape[1]), atol=1e-6):
        raise NotYet("`pos` is not the 2-D sin-cos embedding of this token grid")
    return ("54 tokens on a 6 x 9 grid, token 10 at row 1, column 1, one position embedding each (the drawings are "
            "not checked)")


@checker
def check_01_exercise_2(reconstructions: Any, errors: Any) -> str:
    """Lesson 01, exercise 2: the 128 px photo with one mean colour per P x P patch, and its error, for P = 4, 8, 16,
    32."""
    photo = load_sample_photo(128)  # (3, 128, 128)
    sizes = (4, 8, 16, 32)
    for name, answers in (("reconstructions", reconstructions), ("errors", errors)):
        missing = [P for P in sizes if P not in _given(answers, name)]
        if missing:
            raise NotYet(f"`{name}` has no entry yet for P = {missing} (use the patch size as the key)")
    for P in sizes:
        got = _tensor(reconstructions[P], f"reconstructions[{P}]")
        got = got[0] if got.ndim == 4 and got.shape[0] == 1 else got
        if got.shape != photo.shape:
            raise NotYet(f"reconstructions[{P}] has shape {tuple(got.shape)}, expected the photo's "
                         f"{tuple(photo.shape)}")
        want = F.interpolate(F.avg_pool2d(photo[None], P), scale_factor=P, mode="nearest")[0]  # (3, 128, 128)
        if not torch.allclose(got, want, atol=1e-5):
            raise NotYet(f"reconstructions[{P}] is not the photo with each {P} x {P} patch filled with that patch's "
                         f"mean colour (largest difference {(got - want).abs().max():.3f})")
        if not math.isclose(_number(errors[P], f"errors[{P}]"), F.mse_loss(want, photo).item(),
                            rel_tol=1e-3, abs_tol=1e-7):
            raise NotYet(f"errors[{P}] is not the mean squared error between reconstructions[{P}] and the photo")
    return ("one mean colour per patch, and the error grows with the patch size; which P to pick is for you to argue "
            "(see the solution)")


@checker
def check_01_exercise_3(patch_embed_params: Any) -> str:
    """Lesson 01, exercise 3: a formula for a patch embedding's parameters, with and without bias, on hidden sizes."""
    for P, C, D, bias in [(8, 3, 64, True), (14, 3, 1024, False), (16, 1, 32, True), (4, 5, 7, False),
                          (3, 2, 10, True)]:
        got = _call(patch_embed_params, "patch_embed_params", P, C, D, bias=bias)
        want = sum(p.numel() for p in PatchEmbed(P, C, D).parameters()) - (0 if bias else D)
        if got != want:
            parts = "weights and biases" if bias else "weights only (no bias, like CLIP's convolution)"
            raise NotYet(f"patch_embed_params({P}, {C}, {D}, bias={bias}) = {got} does not count the {parts} of a "
                         f"patch embedding from {P} x {P} patches of {C} channels to width {D}")
    return "the count depends on P, C and D, never on the image size (the learned position table does)"


@checker
def check_01_exercise_4(pos_1d: Any, more_alike_1d: Any, more_alike_2d: Any) -> str:
    """Lesson 01, exercise 4: 1-D sin-cos on the 6 x 6 grid, and which token pair each embedding finds more alike."""
    got = _tensor(pos_1d, "pos_1d")
    reference_1d = sincos_1d(torch.arange(36), 64)
    if got.shape != reference_1d.shape or not torch.allclose(got, reference_1d, atol=1e-6):
        raise NotYet("`pos_1d` is not the 1-D sin-cos embedding of the 36 token indices 0..35 at width 64")
    pairs = [frozenset((5, 6)), frozenset((0, 6))]
    for name, answer, embedding, kind in (("more_alike_1d", more_alike_1d, reference_1d, "1-D"),
                                          ("more_alike_2d", more_alike_2d, sincos_2d(6, 6, 64), "2-D")):
        pair = frozenset(_ints(answer, name))
        if pair not in pairs:
            raise NotYet(f"`{name}` should be one of the two pairs of the question: (5, 6) or (0, 6)")
        similar = max(pairs, key=lambda p: F.cosine_similarity(*embedding[sorted(p)], dim=0).item())
        if pair != similar:
            raise NotYet(f"`{name}` is not the pair that looks more alike: compare the cosine similarity of both pairs "
                         f"under the {kind} embedding")
    return ("the 1-D code takes the row wrap for a neighbour, the 2-D code knows which patch is above which (the plot "
            "is not checked)")
