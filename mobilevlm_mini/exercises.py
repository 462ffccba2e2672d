"""Exercise checkers for self-study: `check_NN_exercise_K(...)` says "correct" or what is still wrong.

Each lesson's exercise cell ends with a call to its checker. A checker tests the learner's answer
(values, shapes, or a function run on hidden cases) against the lesson's ideas without printing the
answer itself. It never raises on an unfinished answer (None, NotImplementedError, a wrong shape):
it prints what is missing and returns False, so a starter notebook still runs top to bottom.
Plots and discussion questions have no checker; the solutions notebooks show them.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mobilevlm_mini.attention import GatedCrossAttentionBlock, MultiHeadAttention, causal_mask
from mobilevlm_mini.config import QUICK_ENV
from mobilevlm_mini.language import apply_rope, kv_cache_bytes, preset, rope_cos_sin
from mobilevlm_mini.language import count_parameters as llm_parameters
from mobilevlm_mini.patches import PatchEmbed, patchify, sincos_1d, sincos_2d
from mobilevlm_mini.photos import load_sample_photo
from mobilevlm_mini.projectors import PixelShuffle, PoolProjector, build_projector, count_parameters

_QUICK_AT_IMPORT = os.environ.get(QUICK_ENV)  # lesson 00, exercise 1 asks the learner to put it back


class NotYet(Exception):
    """What is still wrong with an answer: a checker prints it and returns False."""


def checker(check: Callable[..., str]) -> Callable[..., bool]:
    """Wrap a check that returns a success message or raises NotYet: print "correct: ..." / "not yet: ...", return True / False."""

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> bool:
        try:
            message = check(*args, **kwargs)
        except NotYet as problem:
            print(f"not yet: {problem}")
            return False
        except NotImplementedError:
            print("not yet: your code still raises NotImplementedError; replace it with your solution")
            return False
        except Exception as error:  # whatever else an unfinished answer triggers, the notebook goes on
            print(f"not yet: checking your answer raised {type(error).__name__}: {error}")
            return False
        print(f"correct: {message}")
        return True

    return run


# ---------------------------------------------------------------- helpers


def _given(value: Any, name: str) -> Any:
    """The value, or NotYet when it is still the starter's None or an empty container."""
    if value is None or (isinstance(value, (dict, list, tuple)) and not value):
        raise NotYet(f"`{name}` is still {'None' if value is None else 'empty'}: replace the starter's placeholder with your answer")
    return value


def _tensor(value: Any, name: str) -> torch.Tensor:
    """A detached tensor, or NotYet naming what came instead."""
    _given(value, name)
    if not isinstance(value, torch.Tensor):
        raise NotYet(f"`{name}` should be a torch.Tensor, got {type(value).__name__}")
    return value.detach()


def _number(value: Any, name: str) -> float:
    """A float (from a number or a one-element tensor), or NotYet."""
    _given(value, name)
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise NotYet(f"`{name}` should be a number, got {type(value).__name__}") from None


def _describe(args: tuple, kwargs: dict) -> str:
    """Short description of a hidden test case: tensor shapes and plain values."""
    show = [f"a tensor of shape {tuple(a.shape)}" if isinstance(a, torch.Tensor) else repr(a) for a in args]
    return ", ".join(show + [f"{k}={v!r}" for k, v in kwargs.items()])


def _call(function: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function on a hidden case; NotYet if it is missing, raises or returns None."""
    if not callable(function):
        raise NotYet(f"`{name}` should be a function, got {type(function).__name__}")
    try:
        result = function(*args, **kwargs)
    except NotImplementedError:
        raise NotYet(f"`{name}` still raises NotImplementedError: write its body") from None
    except Exception as error:
        raise NotYet(f"`{name}({_describe(args, kwargs)})` raised {type(error).__name__}: {error}") from None
    if result is None:
        raise NotYet(f"`{name}` returned None: return your result")
    return result


def _ints(value: Any, name: str, count: int = 2) -> tuple[int, ...]:
    """A tuple of `count` whole numbers, or NotYet."""
    _given(value, name)
    try:
        numbers = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise NotYet(f"`{name}` should be {count} whole numbers, e.g. a tuple, got {value!r}") from None
    if len(numbers) != count:
        raise NotYet(f"`{name}` should hold {count} numbers, got {len(numbers)}")
    return numbers


def _close(a: float, b: float, rel: float = 0.01) -> bool:
    return math.isclose(a, b, rel_tol=rel)


# ---------------------------------------------------------------- lesson 00 · setup and the map


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
        hint = "LDP keeps 1 token in 4" if n == (448 // 14) ** 2 else "count the 14 x 14 patches of a 448 x 448 image, then apply LDP"
        raise NotYet(f"(c) is not right: {hint}")
    return "(a), (b) and (c) are right (the drawing is not checked: compare it with the solution)"


@checker
def check_00_exercise_3(project_16x: Any, to_llm: Any, tokens_read: Any) -> str:
    """Lesson 00, exercise 3: a projector that averages 4 x 4 blocks of the 8 x 8 grid, and the LLM's input length."""
    if not isinstance(to_llm, nn.Linear):
        raise NotYet("pass the smoke run's `to_llm` layer as the second argument")
    features = torch.randn(2, 64, to_llm.in_features, generator=torch.Generator().manual_seed(0))  # (B, 8*8, D_v)
    with torch.no_grad():
        got = _tensor(_call(project_16x, "project_16x", features), "project_16x(features)")
        grid = rearrange(features, "b (h w) d -> b d h w", h=8)
        want = to_llm(rearrange(F.avg_pool2d(grid, 4), "b d h w -> b (h w) d"))  # (B, 4, D_t)
    if got.shape != want.shape:
        hint = ": that is still the 2 x 2 projector's count" if got.ndim == 3 and got.shape[1] == 16 else ""
        raise NotYet(f"project_16x turned (2, 64, {to_llm.in_features}) encoder tokens into shape {tuple(got.shape)}, "
                     f"expected (B, 4, {to_llm.out_features}){hint}")
    if not torch.allclose(got, want, atol=1e-5):
        raise NotYet("the shapes are right but the values are not `to_llm` of the averages of the 4 x 4 blocks of the "
                     "8 x 8 grid: check how tokens map to grid rows and columns (row by row) and that you average, not sum")
    n = _number(tokens_read, "tokens_read")
    if n != 4 + 6:
        hint = "that is the 2 x 2 projector's count" if n == 16 + 6 else "add up the image tokens and the question's words"
        raise NotYet(f"`tokens_read` is not how many tokens the LLM now reads: {hint}")
    return "4 image tokens + 6 question words reach the LLM; the same `to_llm` works, since pooling changes the count, not the width"


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
    return "token 0 of the bidirectional encoder sees the last patch; position 0 of the causal LLM never sees the future"


# ---------------------------------------------------------------- lesson 01 · patch embedding


@checker
def check_01_exercise_1(tokens: Any, row_col: Any, pos: Any) -> str:
    """Lesson 01, exercise 1: patches of the 64 x 96 crop, where token 13 sits, and its 2-D sin-cos embeddings."""
    image = load_sample_photo(96)[:, 16:80, :]  # (3, 64, 96), the exercise's crop
    want = patchify(image[None], 8)  # (1, N, 192)
    got = _tensor(tokens, "tokens")
    got = got[None] if got.ndim == 2 else got
    if got.ndim != 3 or got.shape[0] != 1:
        raise NotYet(f"`tokens` has shape {tuple(got.shape)}: expected (1, N, P*P*C) for one image")
    if got.shape[-1] != want.shape[-1]:
        raise NotYet(f"each token should hold every number of one 8 x 8 patch of 3 colours, yours hold {got.shape[-1]}")
    if got.shape[1] != want.shape[1]:
        raise NotYet(f"you have {got.shape[1]} tokens: count the 8 x 8 patches down the 64 rows and across the 96 columns")
    if not torch.allclose(got, want):
        raise NotYet("`tokens` does not hold the crop's patches in reading order (row by row, each patch flattened "
                     "as (P, P, C)): cut the crop itself, `image`, into 8 x 8 patches")
    if _ints(row_col, "row_col") != divmod(13, 96 // 8):
        raise NotYet("token 13 is not at that place: tokens go row by row, and one row of this grid has as many "
                     "tokens as there are patches across the image's width")
    p = _tensor(pos, "pos")
    if p.ndim != 2 or p.shape[0] != want.shape[1]:
        raise NotYet(f"`pos` has shape {tuple(p.shape)}: one embedding (a row) per token is needed")
    if p.shape[1] % 4:
        raise NotYet(f"2-D sin-cos embeddings need a width divisible by 4, yours is {p.shape[1]}")
    if torch.allclose(p, sincos_2d(12, 8, p.shape[1])):
        raise NotYet("`pos` swaps the grid's height and width: sincos_2d(grid_h, grid_w, dim) takes the rows first")
    if not torch.allclose(p, sincos_2d(8, 12, p.shape[1]), atol=1e-6):
        raise NotYet("`pos` is not the 2-D sin-cos embedding of this token grid")
    return "96 tokens on an 8 x 12 grid, token 13 at row 1, column 1, one position embedding each (the drawings are not checked)"


@checker
def check_01_exercise_2(reconstructions: Any, errors: Any) -> str:
    """Lesson 01, exercise 2: the 128 px photo with one mean colour per P x P patch, and its error, for P = 4, 8, 16, 32."""
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
            raise NotYet(f"reconstructions[{P}] has shape {tuple(got.shape)}, expected the photo's {tuple(photo.shape)}")
        want = F.interpolate(F.avg_pool2d(photo[None], P), scale_factor=P, mode="nearest")[0]  # (3, 128, 128)
        if not torch.allclose(got, want, atol=1e-5):
            raise NotYet(f"reconstructions[{P}] is not the photo with each {P} x {P} patch filled with that patch's mean "
                         f"colour (largest difference {(got - want).abs().max():.3f})")
        if not math.isclose(_number(errors[P], f"errors[{P}]"), F.mse_loss(want, photo).item(), rel_tol=1e-3, abs_tol=1e-7):
            raise NotYet(f"errors[{P}] is not the mean squared error between reconstructions[{P}] and the photo")
    return "one mean colour per patch, and the error grows with the patch size; which P to pick is for you to argue (see the solution)"


@checker
def check_01_exercise_3(patch_embed_params: Any) -> str:
    """Lesson 01, exercise 3: a formula for a patch embedding's parameters, with and without bias, on hidden sizes."""
    for P, C, D, bias in [(8, 3, 64, True), (14, 3, 1024, False), (16, 1, 32, True), (4, 5, 7, False), (3, 2, 10, True)]:
        got = _call(patch_embed_params, "patch_embed_params", P, C, D, bias=bias)
        want = sum(p.numel() for p in PatchEmbed(P, C, D).parameters()) - (0 if bias else D)
        if got != want:
            parts = "weights and biases" if bias else "weights only (no bias, like CLIP's convolution)"
            raise NotYet(f"patch_embed_params({P}, {C}, {D}, bias={bias}) = {got} does not count the {parts} of a patch "
                         f"embedding from {P} x {P} patches of {C} channels to width {D}")
    return "the count depends on P, C and D, never on the image size (the learned position table does)"


@checker
def check_01_exercise_4(pos_1d: Any, more_alike_1d: Any, more_alike_2d: Any) -> str:
    """Lesson 01, exercise 4: 1-D sin-cos on the 8 x 8 grid, and which token pair each embedding finds more alike."""
    got = _tensor(pos_1d, "pos_1d")
    reference_1d = sincos_1d(torch.arange(64), 64)
    if got.shape != reference_1d.shape or not torch.allclose(got, reference_1d, atol=1e-6):
        raise NotYet("`pos_1d` is not the 1-D sin-cos embedding of the 64 token indices 0..63 at width 64")
    pairs = [frozenset((7, 8)), frozenset((0, 8))]
    for name, answer, embedding, kind in (("more_alike_1d", more_alike_1d, reference_1d, "1-D"),
                                          ("more_alike_2d", more_alike_2d, sincos_2d(8, 8, 64), "2-D")):
        pair = frozenset(_ints(answer, name))
        if pair not in pairs:
            raise NotYet(f"`{name}` should be one of the two pairs of the question: (7, 8) or (0, 8)")
        similar = max(pairs, key=lambda p: F.cosine_similarity(*embedding[sorted(p)], dim=0).item())
        if pair != similar:
            raise NotYet(f"`{name}` is not the pair that looks more alike: compare the cosine similarity of both pairs "
                         f"under the {kind} embedding")
    return "the 1-D code takes the row wrap for a neighbour, the 2-D code knows which patch is above which (the plot is not checked)"


# ---------------------------------------------------------------- lesson 02 · self-attention


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
        raise NotYet("without the scale the gradient should shrink as d grows (the softmax saturates): check the unscaled runs")
    if raw[2] > 0.25 * scaled[2]:
        raise NotYet(f"without the scale, the gradient at d = 1024 should nearly vanish; yours is still "
                     f"{raw[2] / scaled[2]:.0%} of the scaled one")
    if not all(0.03 < v < 1.0 for v in scaled):
        raise NotYet("your scaled gradient norms are far from the size of one row's gradient: take the norm of each row "
                     "of s.grad (dim=-1) and the median over the rows, with g of 64 standard-normal numbers")
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
            raise NotYet(f"face_maps[{alpha}] has shape {tuple(w.shape)}: give the face query's weights, one per patch (256)")
        w = w.flatten()
        if (w < 0).any():
            raise NotYet(f"face_maps[{alpha}] has negative entries: attention weights never are")
        if not math.isclose(w.sum().item(), 1.0, abs_tol=1e-3):
            raise NotYet(f"your attention weights for alpha = {alpha} do not sum to 1 over the keys (the 256 patches)")
        spread.append((w * distance).sum().item())
    if not spread[0] > spread[1] > spread[2] or spread[2] > 0.6 * spread[0]:
        raise NotYet("the face query's attention should gather around the face as alpha grows (its mean distance from "
                     "the face patch, in patches, is " + ", ".join(f"{s:.2f}" for s in spread) + "): scale the unit-length "
                     "positions to length alpha and keep the colour head's temperature")
    return "as alpha grows, where a patch is counts more than its colour and the map gathers around the face (the maps are not checked)"


@checker
def check_02_exercise_3(mask: Any, last_two: Any, full: Any) -> str:
    """Lesson 02, exercise 3: causal_mask(2, 6), and masked attention of the 2 newest queries = last 2 rows of full attention."""
    got = _tensor(mask, "mask")
    if got.dtype != torch.bool:
        raise NotYet("`mask` should be boolean (True = may attend), as causal_mask returns")
    if got.shape != (2, 6):
        raise NotYet(f"`mask` has shape {tuple(got.shape)}: expected one row per new query and one column per key, (2, 6)")
    if not torch.equal(got, causal_mask(6)[-2:]):
        raise NotYet("the two new queries are positions 4 and 5 of 6: each may see every key up to its own position")
    new, everything = _tensor(last_two, "last_two"), _tensor(full, "full")
    if everything.ndim < 2 or everything.shape[-2] != 6:
        raise NotYet(f"`full` has shape {tuple(everything.shape)}: it should be the output of 6 x 6 causal attention, one row per query")
    if new.shape[:-2] != everything.shape[:-2] or new.shape[-2:] != (2, everything.shape[-1]):
        raise NotYet(f"`last_two` has shape {tuple(new.shape)}: it should be 2 rows (the new queries) as wide as `full`'s")
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


# ---------------------------------------------------------------- lesson 03 · cross-attention and VLM families


def _text_sees_image(image_after: int, n_img: int, n_text: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """For the image inserted after text token `image_after`: the (N, N) and the (text, image) may-see matrices."""
    is_img = torch.tensor([False] * (image_after + 1) + [True] * n_img + [False] * (n_text - image_after - 1))
    full = causal_mask(len(is_img)) & ~is_img[:, None] & is_img[None, :]  # text query -> image key
    return full, full[~is_img][:, is_img]


@checker
def check_03_exercise_1(allowed_after_user: Any, allowed_at_end: Any) -> str:
    """Lesson 03, exercise 1: which (text query, image key) pairs the causal mask allows, for both image placements."""
    for name, value, after, where in (("allowed_after_user", allowed_after_user, 0, "right after 'USER:'"),
                                      ("allowed_at_end", allowed_at_end, 7, "at the end")):
        got = _tensor(value, name)
        if got.dtype != torch.bool:
            if not ((got == 0) | (got == 1)).all():
                raise NotYet(f"`{name}` should be boolean: True where a text query may see an image key")
            got = got.bool()
        if got.ndim == 2 and got.shape[0] == got.shape[1] and got.shape[0] > 8:
            want = _text_sees_image(after, got.shape[0] - 8)[0]
        elif got.ndim == 2 and got.shape[0] == 8:
            want = _text_sees_image(after, got.shape[1])[1]
        else:
            raise NotYet(f"`{name}` has shape {tuple(got.shape)}: use the whole sequence (N x N, with the 8 words of "
                         "'USER: what colour is the flag ? ASSISTANT:' and the image tokens) or text queries x image keys (8 x N_img)")
        if not torch.equal(got, want):
            hint = ("some pairs you allow are not (text query, image key) pairs the causal mask lets through"
                    if (got & ~want).any() else "some (text query, image key) pairs that the causal mask lets through are missing")
            raise NotYet(f"image {where}: {int((got != want).sum())} entries of `{name}` are wrong; {hint}")
    return "only text after the image can see it; why the image goes before the question is discussed in the solution"


@checker
def check_03_exercise_2(student: Any, teacher: Any) -> str:
    """Lesson 03, exercise 2: only the student's two gates were trained, and they opened towards the teacher's."""
    for name, block in (("student", student), ("teacher", teacher)):
        if not isinstance(_given(block, name), GatedCrossAttentionBlock):
            raise NotYet(f"`{name}` should be a GatedCrossAttentionBlock, got {type(block).__name__}")
    if student is teacher:
        raise NotYet("the teacher must be a copy of the student (copy.deepcopy), not the same block")
    if not (teacher.attn_gate.detach() == 1).all() or not (teacher.mlp_gate.detach() == 1).all():
        raise NotYet("set both of the teacher's gates, attn_gate and mlp_gate, to 1.0")
    theirs = dict(teacher.named_parameters())
    for name, weight in student.named_parameters():
        if "gate" not in name and (weight.shape != theirs[name].shape or not torch.equal(weight, theirs[name])):
            raise NotYet(f"the student's `{name}` differs from the teacher's: copy the student before training and give "
                         "the optimizer only the two gates")
    gates = student.attn_gate.detach().tanh().item(), student.mlp_gate.detach().tanh().item()
    if gates == (0.0, 0.0):
        raise NotYet("the student's gates are still at 0: train them")
    if min(gates) < 0.5:
        raise NotYet(f"the student's gates have opened only to tanh = {gates[0]:.2f} and {gates[1]:.2f}: train longer, or "
                     "check the loss (mean squared error to the teacher's output) and the learning rate (0.05)")
    return "only the gates moved: from 0 (the frozen LM unchanged) towards the teacher's tanh(1) (the plot is not checked)"


@checker
def check_03_exercise_3(layer_flops: Any, speedup: Any) -> str:
    """Lesson 03, exercise 3: one MobileLLaMA 1.4B layer's prefill FLOPs (attention scores, linear layers) and LDP's speed-up."""
    D = 2048
    for n in (1, 100, 208, 640, 1000):
        result = _call(layer_flops, "layer_flops", n)
        try:
            scores, linear = (float(v) for v in result)
        except (TypeError, ValueError):
            raise NotYet("`layer_flops(n)` should return two numbers: (attention-score FLOPs, linear-layer FLOPs)") from None
        if not _close(scores, 4 * n * n * D, 1e-6):
            raise NotYet(f"the attention-score FLOPs for N = {n} tokens do not match 4 N^2 D with D = 2048")
        if not _close(linear, 24 * n * D * D, 1e-6):
            raise NotYet(f"the linear-layer FLOPs for N = {n} tokens do not match 24 N D^2 with D = 2048")

    def prefill(n_img: int) -> float:
        n = n_img + 64
        return 4 * n * n * D + 24 * n * D * D

    s, want = _number(speedup, "speedup"), prefill(576) / prefill(144)
    if not _close(s, want):
        if _close(s, 1 / want):
            hint = "turn it around: the FLOPs with 576 image tokens divided by those with 144"
        elif _close(s, 4.0):
            hint = "576 / 144 counts the image tokens only: add the 64 text tokens, and both terms"
        else:
            hint = "compare the total of both terms, with N = N_img + 64 text tokens, for 576 and for 144 image tokens"
        raise NotYet(f"`speedup` is not right: {hint}")
    return "the FLOP formulas and the speed-up are right: compare the speed-up with the 4x cut in image tokens"


@checker
def check_03_exercise_4(resampler: Any, latents: Any) -> str:
    """Lesson 03, exercise 4: learned latents cross-attend to any number of image tokens and always give 8 tokens."""
    if not isinstance(_given(resampler, "resampler"), MultiHeadAttention):
        raise NotYet(f"`resampler` should be a MultiHeadAttention, got {type(resampler).__name__}")
    if resampler.kv.in_features != 48 or resampler.q.in_features != 64:
        raise NotYet("the latents have width 64 and the image tokens width 48: build MultiHeadAttention(64, 4, context_dim=48)")
    if not isinstance(_given(latents, "latents"), nn.Parameter):
        raise NotYet("`latents` should be learned: wrap the tensor in nn.Parameter")
    if latents.shape != (1, 8, 64):
        raise NotYet(f"`latents` has shape {tuple(latents.shape)}, expected 8 latent queries of width 64 for one image: (1, 8, 64)")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n_img in (256, 576, 37):
            image_tokens = torch.randn(1, n_img, 48, generator=generator)  # (B, N_img, 48)
            out, weights = _call(resampler, "resampler", latents, context=image_tokens, return_weights=True)
            if out.shape != (1, 8, 64):
                raise NotYet(f"for {n_img} image tokens the resampler gives shape {tuple(out.shape)}, expected (1, 8, 64)")
            if not torch.allclose(weights.sum(dim=-1), torch.ones(weights.shape[:-1]), atol=1e-5):
                raise NotYet("each latent's attention weights over the image tokens should sum to 1")
    return "8 output tokens whatever the number of image tokens: the token budget is fixed"


# ---------------------------------------------------------------- lesson 05 · projectors and token reduction


@checker
def check_05_exercise_1(pool: Any, pixel_shuffle: Any, real_params: Any) -> str:
    """Lesson 05, exercise 1: pooling and pixel shuffle that keep 1 token in 9, and their parameters at 1024 -> 2048."""
    generator = torch.Generator().manual_seed(5)
    for name, projector, kind in (("pool", pool, PoolProjector), ("pixel_shuffle", pixel_shuffle, PixelShuffle)):
        if type(_given(projector, name)) is not kind:
            raise NotYet(f"`{name}` should be built with build_projector({name!r}, ...), got {type(projector).__name__}")
        x = torch.randn(2, 576, projector.vision_dim, generator=generator)  # (B, 24*24, D_v)
        with torch.no_grad():
            out = _call(projector, name, x)
        if out.shape[1] != 64:
            raise NotYet(f"`{name}` turns 576 tokens into {out.shape[1]}: a 9x reduction keeps 1 token in 9 (the `factor` option)")
    mlp = 1024 * 2048 + 2048 + 2048 * 2048 + 2048
    wanted = {"pool": mlp, "pixel_shuffle": 9 * 1024 * 2048}
    missing = [name for name in wanted if name not in _given(real_params, "real_params")]
    if missing:
        raise NotYet(f"`real_params` has no count yet for {missing}")
    for name, want in wanted.items():
        if _number(real_params[name], f"real_params[{name!r}]") != want:
            raise NotYet(f"real_params[{name!r}] is not the parameter count of that projector at 1024 -> 2048 with factor 3: "
                         "count it with count_parameters")
    return "both keep 64 of 576 tokens; pooling adds no parameters, pixel shuffle's Linear grows with s^2 (the 8 x 8 question is discussed in the solution)"


_WINDOWS = {"ldp": (25, 15), "ldpv2": (36, 24), "pool": (4, 0), "pixel_shuffle": (4, 0)}  # (read by 5, shared with 6)


@checker
def check_05_exercise_2(counts: Any, disjoint: Any) -> str:
    """Lesson 05, exercise 2: input tokens read by output token 5, and shared with token 6, per projector and for a disjoint LDP."""
    missing = [name for name in _WINDOWS if name not in _given(counts, "counts")]
    if missing:
        raise NotYet(f"`counts` has no (read, shared) pair yet for {missing}")
    answers = {name: (_ints(counts[name], f"counts[{name!r}]"), want) for name, want in _WINDOWS.items()}
    answers["the disjoint LDP"] = (_ints(disjoint, "disjoint"), (16, 8))
    for name, ((read, shared), (want_read, want_shared)) in answers.items():
        if read != want_read:
            more = "more" if want_read > read else "fewer"
            raise NotYet(f"{name}: output token 5 reads {more} input tokens than {read}: count the tokens whose influence "
                         "(influence_map) is above 1% of that map's maximum")
        if shared != want_shared:
            raise NotYet(f"{name}: the number of input tokens that output tokens 5 and 6 both read is not {shared}")
    return "all five counts are right: now use them to say which design lets a small shape on a border reach both tokens"


@checker
def check_05_exercise_3(ldp_params: Any, ldpv2_params: Any, width: Any) -> str:
    """Lesson 05, exercise 3: LDP's and LDPv2's parameter formulas on hidden sizes, and the width where LDP passes 100M."""
    for d_v, c in [(1024, 2048), (128, 128), (64, 256), (96, 64), (48, 160)]:
        for name, formula, projector in (("ldp_params", ldp_params, "ldp"), ("ldpv2_params", ldpv2_params, "ldpv2")):
            got = _call(formula, name, d_v, c)
            if got != count_parameters(build_projector(projector, d_v, c)):
                raise NotYet(f"{name}({d_v}, {c}) does not match count_parameters(build_projector({projector!r}, {d_v}, {c})): "
                             "write the formula term by term and compare each term with the module's named_parameters()")
    w = _number(width, "width")
    # LDP(1024 -> C) has 4 C^2 + 1054.5 C parameters (squeeze width C/4): the C where that reaches 100M
    exact = (-1054.5 + math.sqrt(1054.5**2 + 16e8)) / 8
    if w < 0.99 * exact:
        raise NotYet(f"at LLM width {w:g} LDP still has fewer than 100M parameters: go wider")
    if w > 1.01 * exact:
        raise NotYet(f"LDP passes 100M parameters well below width {w:g}: find the first width where it does")
    return "both formulas match count_parameters on every hidden size, and the width is right: now see which term dominates"


# ---------------------------------------------------------------- lesson 06 · a tiny MobileLLaMA


@checker
def check_06_exercise_1(rope_complex: Any) -> str:
    """Lesson 06, exercise 1: RoPE as complex multiplication agrees with apply_rope on hidden shapes, positions and bases."""
    generator = torch.Generator().manual_seed(6)
    for shape, positions, base in [((6, 16), torch.arange(6), None), ((2, 4, 9, 32), torch.arange(3, 12), None),
                                   ((5, 8), torch.arange(5), 500.0)]:
        x = torch.randn(*shape, generator=generator)
        before = x.clone()
        options = {} if base is None else {"base": base}
        got = _tensor(_call(rope_complex, "rope_complex", x, positions, **options), "rope_complex(x, positions)")
        if got.is_complex():
            raise NotYet("return real numbers: real parts in the first half of the last dimension, imaginary parts in the second")
        if not torch.equal(x, before):
            raise NotYet("rope_complex changed its input in place: compute a new tensor")
        if got.shape != x.shape:
            raise NotYet(f"for x of shape {shape}, rope_complex returned shape {tuple(got.shape)}: a rotation keeps the shape")
        cos, sin = rope_cos_sin(positions, shape[-1], theta=base or 10000.0)
        if not torch.allclose(got, apply_rope(x, cos, sin), atol=1e-4):
            if torch.allclose(got, x):
                raise NotYet("rope_complex returns its input unchanged: it does not rotate yet")
            where = f"x of shape {shape}, positions {positions[0]}..{positions[-1]}" + (f", base {base:g}" if base else "")
            raise NotYet(f"rope_complex differs from apply_rope for {where}: pair i is (x_i, x_(i+d/2)) and turns by "
                         "position * base^(-2i/d)")
    return "multiplying pair i by e^(i m theta_i) is exactly apply_rope's rotation"


@checker
def check_06_exercise_2(saved: Any, sequences_before: Any, sequences_after: Any) -> str:
    """Lesson 06, exercise 2: parameters saved by 4 key/value heads in MobileLLaMA 1.4B, and 2048-token sequences per GiB of cache."""
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
            raise NotYet(f"for {case}, min_p_filter keeps every token: set to -inf the tokens whose probability is below "
                         "min_p times the largest probability")
        if not torch.equal(kept, keep):
            raise NotYet(f"for {case}, min_p_filter keeps {int(kept.sum())} tokens, which is wrong: compare each row's "
                         "probabilities with min_p times that row's own largest probability")
        if not torch.equal(got[keep], logits[keep]):
            raise NotYet("the tokens you keep must keep their logits unchanged")
    return "min_p_filter keeps exactly the right tokens on every hidden case: now compare what it keeps with top-p 0.9"
