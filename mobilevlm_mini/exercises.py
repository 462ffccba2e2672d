"""Exercise checkers for self-study: `check_NN_exercise_K(...)` says "correct" or what is still wrong.

Each lesson's exercise cell ends with a call to its checker. A checker tests the learner's answer
(values, shapes, or a function run on hidden cases) against the lesson's ideas without printing the
answer itself. It never raises on an unfinished answer (None, NotImplementedError, a wrong shape):
it prints what is missing and returns False, so a starter notebook still runs top to bottom.
Plots and discussion questions have no checker; the solutions notebooks show them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors import safe_open
from torch import nn

from mobilevlm_mini.attention import GatedCrossAttentionBlock, MultiHeadAttention, causal_mask
from mobilevlm_mini.bench import bytes_per_token
from mobilevlm_mini.checkpoint import WEIGHTS
from mobilevlm_mini.config import QUICK_ENV
from mobilevlm_mini.contrastive import PretrainConfig, TextTuningConfig
from mobilevlm_mini.data import COARSE_TYPES, COLOURS, FINE_TYPES
from mobilevlm_mini.hf import config_from_hf
from mobilevlm_mini.language import MobileLlama, apply_rope, kv_cache_bytes, preset, rope_cos_sin
from mobilevlm_mini.language import count_parameters as llm_parameters
from mobilevlm_mini.model import IGNORE
from mobilevlm_mini.patches import PatchEmbed, patchify, sincos_1d, sincos_2d
from mobilevlm_mini.photos import load_sample_photo
from mobilevlm_mini.projectors import PixelShuffle, PoolProjector, build_projector, count_parameters
from mobilevlm_mini.quant import GRANULARITIES, QuantLinear, QuantSpec, quantize, quantize_model, size_on_disk
from mobilevlm_mini.video import every_kth_frame

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
                     "6 x 6 grid: check how tokens map to grid rows and columns (row by row) and that you average, not sum")
    n = _number(tokens_read, "tokens_read")
    if n != 4 + 6:
        hint = "that is the 2 x 2 projector's count" if n == 9 + 6 else "add up the image tokens and the question's words"
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
        raise NotYet(f"you have {got.shape[1]} tokens: count the 8 x 8 patches down the 48 rows and across the 72 columns")
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
    return "54 tokens on a 6 x 9 grid, token 10 at row 1, column 1, one position embedding each (the drawings are not checked)"


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
    return "both keep 64 of 576 tokens; pooling adds no parameters, pixel shuffle's Linear grows with s^2 (what a 9x cut does on the course's 6 x 6 grid is discussed in the solution)"


_WINDOWS = {"ldp": (25, 15), "ldpv2": (36, 24), "pool": (4, 0), "pixel_shuffle": (4, 0)}  # (read by 65, shared with 66) on a 24 x 24 grid


@checker
def check_05_exercise_2(counts: Any, disjoint: Any) -> str:
    """Lesson 05, exercise 2: on a 24 x 24 grid, input tokens read by output token 65, and shared with token 66, per projector and for a disjoint LDP."""
    missing = [name for name in _WINDOWS if name not in _given(counts, "counts")]
    if missing:
        raise NotYet(f"`counts` has no (read, shared) pair yet for {missing}")
    answers = {name: (_ints(counts[name], f"counts[{name!r}]"), want) for name, want in _WINDOWS.items()}
    answers["the disjoint LDP"] = (_ints(disjoint, "disjoint"), (16, 8))
    for name, ((read, shared), (want_read, want_shared)) in answers.items():
        if read != want_read:
            more = "more" if want_read > read else "fewer"
            raise NotYet(f"{name}: output token 65 reads {more} input tokens than {read}: count the tokens whose influence "
                         "(influence_map) is above 1% of that map's maximum")
        if shared != want_shared:
            raise NotYet(f"{name}: the number of input tokens that output tokens 65 and 66 both read is not {shared}")
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


# ---------------------------------------------------------------- lesson 04 · a tiny ViT and contrastive pretraining


@checker
def check_04_exercise_1(recipes: Any, short: Any) -> str:
    """Lesson 04, exercise 1: CLIP and SigLIP recipes at batch 16 and 128 that see the same number of images as each other."""
    keys = [(loss, batch) for loss in ("clip", "siglip") for batch in (16, 128)]
    missing = [key for key in keys if key not in _given(recipes, "recipes")]
    if missing:
        raise NotYet(f"`recipes` has no recipe yet for (loss, batch) = {missing}")
    if not isinstance(short, PretrainConfig):
        raise NotYet("pass the lesson's short recipe, `short`, as the second argument")
    for (loss, batch), recipe in ((key, recipes[key]) for key in keys):
        if not isinstance(recipe, PretrainConfig):
            raise NotYet(f"recipes[{loss!r}, {batch}] should be a recipe made with dataclasses.replace(short, ...), got {type(recipe).__name__}")
        if recipe.batch_size != batch:
            raise NotYet(f"recipes[{loss!r}, {batch}] has batch_size {recipe.batch_size}")
        if recipe.model.loss != loss:
            raise NotYet(f"recipes[{loss!r}, {batch}] trains with the {recipe.model.loss!r} loss: set model=dataclasses.replace(short.model, loss=...)")
        if dataclasses.replace(recipe, steps=short.steps, batch_size=short.batch_size, model=short.model) != short:
            raise NotYet(f"recipes[{loss!r}, {batch}] changes more than the steps, the batch size and the loss of `short`")
    seen = {key: recipes[key].steps * recipes[key].batch_size for key in keys}
    if len(set(seen.values())) > 1:
        raise NotYet("the four runs do not see the same number of images (steps x batch size): "
                     + ", ".join(f"{loss} at {batch}: {n:,}" for (loss, batch), n in seen.items()))
    if min(recipe.steps for recipe in recipes.values()) < 1:
        raise NotYet("every run needs at least one step")
    return "four runs that differ only in loss and batch size, each seeing the same images (the accuracies are for you to compare with the solution)"


_SCENES = [  # (objects, index in SHAPES of the large one): hidden cases for lesson 04, exercise 3
    ([("circle", "red", "small", 0, 0), ("cross", "blue", "large", 1, 1)], 4),
    ([("diamond", "green", "large", 2, 2)], 3),
    ([("square", "red", "small", 0, 1), ("circle", "yellow", "small", 2, 0), ("triangle", "red", "large", 0, 2)], 2),
    ([("square", "purple", "large", 1, 0), ("cross", "blue", "small", 0, 0)], 1),
]


@checker
def check_04_exercise_3(largest_shape: Any) -> str:
    """Lesson 04, exercise 3: the probe's label, the index in data.SHAPES of a scene's large object, on hidden scenes."""
    keys = ("shape", "colour", "size", "row", "col")
    for scene, want in _SCENES:
        objects = [dict(zip(keys, values)) for values in scene]  # as dataset["objects"] holds them
        got = _call(largest_shape, "largest_shape", objects)
        if isinstance(got, str):
            raise NotYet(f"`largest_shape` returned the name {got!r}: return its index in data.SHAPES, a class label for cross-entropy")
        if _number(got, "largest_shape(objects)") != want:
            raise NotYet(f"`largest_shape` is wrong on a scene of {len(objects)} object(s) whose large object is number "
                         f"{[o['size'] for o in objects].index('large')} in the list: pick the object whose size is 'large'")
    return "the labels are right; what the linear and MLP probes read from each representation is for you to compare with the solution"


@checker
def check_04_exercise_4(tunings: Any, tuning: Any) -> str:
    """Lesson 04, exercise 4: two text tunings that differ from the lesson's only in whole_scene, 0.0 and 1.0."""
    if not isinstance(tuning, TextTuningConfig):
        raise NotYet("pass the lesson's text tuning, `tuning`, as the second argument")
    missing = [w for w in (0.0, 1.0) if w not in _given(tunings, "tunings")]
    if missing:
        raise NotYet(f"`tunings` has no tuning yet for whole_scene = {missing}")
    for whole in (0.0, 1.0):
        given = tunings[whole]
        if not isinstance(given, TextTuningConfig):
            raise NotYet(f"tunings[{whole}] should be made with dataclasses.replace(tuning, ...), got {type(given).__name__}")
        if given.whole_scene != whole:
            raise NotYet(f"tunings[{whole}] has whole_scene = {given.whole_scene}")
        if dataclasses.replace(given, whole_scene=tuning.whole_scene) != tuning:
            raise NotYet(f"tunings[{whole}] changes more than whole_scene: keep the lesson's steps, batch, lr and seed")
    return "two tunings that differ only in what the text side practises (the accuracies are for you to compare with the solution)"


# ---------------------------------------------------------------- lesson 07 · the tiny MobileVLM


@checker
def check_07_exercise_1(all_labels: Any, input_ids: Any, attention_mask: Any, tok: Any) -> str:
    """Lesson 07, exercise 1: labels on every text token of a batch: the ids themselves, IGNORE on padding."""
    labels, ids, mask = _tensor(all_labels, "all_labels"), _tensor(input_ids, "input_ids"), _tensor(attention_mask, "attention_mask")
    if labels.shape != ids.shape:
        raise NotYet(f"`all_labels` has shape {tuple(labels.shape)}, expected one label per id, {tuple(ids.shape)} (the model "
                     "shifts the labels by one itself)")
    image = ids == tok.image_id  # merge replaces this position by the K visual tokens, all ignored
    padding, text = mask == 0, (mask != 0) & ~image
    if (labels[padding] != IGNORE).any():
        raise NotYet(f"{int((labels[padding] != IGNORE).sum())} padding positions (attention_mask == 0) have a label: set them to IGNORE")
    if ((labels[text] != ids[text]) & (labels[text] != IGNORE)).any():
        raise NotYet("some labels of text positions differ from the ids: the label of a position is its own id "
                     "(the model compares position t's prediction with the label at t + 1)")
    if (labels[text] == IGNORE).any():
        raise NotYet(f"{int((labels[text] == IGNORE).sum())} text positions are still IGNORE: label every token of the "
                     "questions and answers, not only the answers")
    if not ((labels[image] == IGNORE) | (labels[image] == tok.image_id)).all():
        raise NotYet("the <image> position should keep its id or be IGNORE")
    return "every text token is labelled, padding never; compare the two losses and the question/answer split with the solution"


@checker
def check_07_exercise_2(model: Any, features: Any, question: Any, p: Any, p_half: Any) -> str:
    """Lesson 07, exercise 2: the model's probability of each colour as the first answer token, and the same at temperature 0.5."""
    feats = _tensor(features, "features")
    if feats.ndim != 3 or feats.shape[0] != 1:
        raise NotYet(f"`features` has shape {tuple(feats.shape)}: give one picture's features, (1, K, D), e.g. test.features[i:i + 1]")
    if not isinstance(_given(question, "question"), str):
        raise NotYet(f"`question` should be the text of the question, got {type(question).__name__}")
    colours = list(COLOURS)
    got = _tensor(p, "p").float().flatten()
    if got.numel() != len(colours):
        raise NotYet(f"`p` has {got.numel()} entries: give one probability per colour, in the order of data.COLOURS ({len(colours)})")
    tok = model.tokenizer
    input_ids, mask = model.prompts([question])
    with torch.no_grad():
        probs = model(input_ids, feats, mask).logits[0, -1].softmax(-1)  # (vocab,) the next token after the prompt
    want = torch.stack([probs[tok.ids[c]] for c in colours])
    if not (torch.allclose(got, want, atol=1e-4) or torch.allclose(got, want / want.sum(), atol=1e-4)):
        hint = " (did you take the softmax of the logits?)" if (got < 0).any() or got.sum() > 1.01 else ""
        raise NotYet(f"`p` is not the model's probability of each colour as the first answer token{hint}: softmax over the vocabulary "
                     "at the last prompt position, then pick each colour's token id")
    half = _tensor(p_half, "p_half").float().flatten()
    if half.shape != got.shape or (half < 0).any():
        raise NotYet("`p_half` should hold one probability per colour, like `p`")
    sharpened = got**2 / (got**2).sum()
    if not torch.allclose(half / half.sum(), sharpened, atol=1e-4):
        flatter = half.max() / half.sum() < got.max() / got.sum()
        raise NotYet("`p_half` is not the colour distribution at temperature 0.5: "
                     + ("yours is flatter than p, but a temperature below 1 sharpens it: " if flatter else "")
                     + "sampling at temperature T draws from softmax(logits / T)")
    return "a temperature of 0.5 squares the probabilities and renormalises them; compare your sampled frequencies with the solution"


# ---------------------------------------------------------------- lesson 08 · does LDP lose information?


_RECORDS = [  # hidden records for lesson 08, exercise 1: (image, type, answer, predicted)
    (0, "colour", "red", "red"), (0, "size", "small", "large"), (0, "shape", "circle", "circle"), (2, "colour", "blue", "green"),
    (2, "count", "two", "two"), (3, "neighbour", "a red circle", "a red circle"), (3, "small", "yes", "yes"), (1, "size", "large", "large"),
]


@checker
def check_08_exercise_1(per_image: Any) -> str:
    """Lesson 08, exercise 1: per test image, the right answers and the questions asked of some question types (for a bootstrap)."""
    records = [{"image": i, "type": kind, "question": "?", "answer": a, "predicted": b} for i, kind, a, b in _RECORDS]
    n = 1 + max(r["image"] for r in records)
    for kinds, name in ((COARSE_TYPES, "COARSE_TYPES"), (FINE_TYPES, "FINE_TYPES")):
        result = _call(per_image, "per_image", records, kinds)
        try:
            right, asked = (torch.as_tensor(v, dtype=torch.float).flatten() for v in result)
        except (TypeError, ValueError, RuntimeError):
            raise NotYet("`per_image(records, kinds)` should return two tensors: (right answers, questions asked) per image") from None
        if len(right) < n or len(asked) != len(right):
            raise NotYet(f"`per_image` should return one count per test image; with questions about images 0-{n - 1} it gave "
                         f"{len(right)} and {len(asked)} counts")
        want_right, want_asked = torch.zeros(len(right)), torch.zeros(len(right))
        for r in records:
            if r["type"] in kinds:
                want_right[r["image"]] += r["answer"] == r["predicted"]
                want_asked[r["image"]] += 1
        if not torch.equal(asked, want_asked):
            raise NotYet(f"the questions asked per image are wrong for kinds={name}: count only the records whose type is in `kinds`, "
                         "at the index of their image")
        if not torch.equal(right, want_right):
            raise NotYet(f"the right answers per image are wrong for kinds={name}: count the records of those types whose "
                         "`predicted` equals their `answer`")
    return "per-image counts are right: resample image indices, sum, divide, and read the 2.5% and 97.5% quantiles"


# ---------------------------------------------------------------- lesson 09 · quantization


def _int4_llm(model: nn.Module, group_size: int, symmetric: bool = True) -> nn.Module:
    """The model's LLM in int4 with groups of `group_size`, ViT and projector kept in float, as lesson 09 quantizes it."""
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
                         f"(symmetric={symmetric}, the ViT and the projector left in float): measure size_on_disk(q4.llm)")
    return f"zero points add {got['asymmetric'] / got['symmetric'] - 1:.1%} to the LLM; whether they pay is for you to judge from the accuracies"


@checker
def check_09_exercise_2(model: Any, bits_per_weight: Any, agreements: Any, width: Any) -> str:
    """Lesson 09, exercise 2: stored bits per LLM weight for int4 groups of 8, 16, 32, agreements, and the width 64 does not divide."""
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
            raise NotYet(f"bits_per_weight[{g}] is not the stored bits per weight of the LLM's Linear layers in int4 groups of {g}: "
                         f"{hint}8 x (bytes of every QuantLinear.quantized) / (weights of those layers)")
        a = _number(agreements[g], f"agreements[{g}]")
        if not 0 <= a <= 1:
            raise NotYet(f"agreements[{g}] = {a} is not a share of answers between 0 and 1 (use quant.agreement)")
    bad = {m.in_features for m in linears if m.in_features % 64}
    w = _number(width, "width")
    if w not in bad:
        raise NotYet(f"64 divides {w:g}: `width` should be the in_features of a layer whose rows cannot be cut into groups of 64")
    return "each halving of the group adds 16 bits of scale per group; a width that 64 does not divide is why group_size=64 fails"


@checker
def check_09_exercise_3(original: Any, weight: Any, errors: Any) -> str:
    """Lesson 09, exercise 3: one weight set to 20 x the largest magnitude, and the int4 error of the other weights per granularity."""
    before, after = _tensor(original, "original"), _tensor(weight, "weight")
    if after.shape != before.shape:
        raise NotYet(f"`weight` has shape {tuple(after.shape)}, expected the gate_proj weight's {tuple(before.shape)}")
    changed = (after != before).nonzero()
    if len(changed) != 1:
        hint = ": clone the weight before you change it, and change one entry" if not len(changed) else ": change exactly one"
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
            raise NotYet(f"errors[{g!r}] is not the relative int4 error, per {g} (groups of 32), of every weight but the outlier: "
                         "||w_hat - w|| / ||w|| over the other weights")
    return "the outlier coarsens the grid of whatever shares its scale: the whole tensor, its row, or its 32-weight group"


# ---------------------------------------------------------------- lesson 10 · CPU speed and energy


@checker
def check_10_exercise_2(llm: Any, tiny_positions: Any, real_positions: Any) -> str:
    """Lesson 10, exercise 2: the context at which the KV cache is as many bytes as the weights, for our fp32 model and MobileLLaMA-1.4B in int4."""
    weights = bytes_per_token(llm, 0)
    tiny = weights / (bytes_per_token(llm, 1) - weights)
    real = preset("mobilellama-1.4b")
    full = llm_parameters(real) * 4 / 8 / kv_cache_bytes(real, 1)
    got_tiny, got_real = _number(tiny_positions, "tiny_positions"), _number(real_positions, "real_positions")
    if abs(got_tiny - tiny) > max(1.0, 0.01 * tiny):
        hint = "our model stores its cache in fp32 (4 bytes a value): " if abs(got_tiny - 2 * tiny) < max(1.0, 0.01 * tiny) else ""
        raise NotYet(f"`tiny_positions` is not right: {hint}divide bytes_per_token(llm, 0) by what one more position adds")
    if abs(got_real - full) > max(1.0, 0.01 * full):
        if abs(got_real - 4 * full) < 0.04 * full:
            hint = "weights in fp16 take 2 bytes; at 4 bits each takes half a byte"
        elif abs(got_real - full / 2) < 0.01 * full:
            hint = "the cache is fp16 (2 bytes a value), kv_cache_bytes's default"
        else:
            hint = "divide the 4-bit weights' bytes (count_parameters x 4 / 8) by kv_cache_bytes(config, 1)"
        raise NotYet(f"`real_positions` is not right: {hint}")
    return "past that context the cache costs more reads per token than the weights: what that does to a long chat is discussed in the solution"


# ---------------------------------------------------------------- lesson 11 · video frames and a resampler


@checker
def check_11_exercise_1(segment_frames: Any) -> str:
    """Lesson 11, exercise 1: segment-centre frame indices floor((i + 1/2) T / n), on hidden clip lengths."""
    for num_frames in (8, 16, 10, 5, 1):
        for n in range(1, num_frames + 1):
            got = _call(segment_frames, "segment_frames", num_frames, n)
            want = [(2 * i + 1) * num_frames // (2 * n) for i in range(n)]
            try:
                got = [int(t) for t in got]
            except (TypeError, ValueError):
                raise NotYet(f"`segment_frames` should return a list of frame indices, got {got!r}") from None
            if got != want:
                raise NotYet(f"segment_frames({num_frames}, {n}) = {got} is not the middle frame of each of {n} equal segments "
                             f"of a {num_frames}-frame clip: frame floor((i + 1/2) T / n) for i = 0 ... n - 1")
    return "segment centres stay inside the clip: which events they miss, and why, is discussed in the solution"


def _visible(clip: Any, kept: list[int]) -> bool:
    """A clip's event shows when one kept frame is before the change and one at or after it."""
    return min(kept) < clip.change_at <= max(kept)


@checker
def check_11_exercise_2(test_clips: Any, visible_8: Any, long_clips: Any, visible_16: Any) -> str:
    """Lesson 11, exercise 2: share of clips whose event is visible in every 4th frame, per start, for 8- and 16-frame clips."""
    for name, clips, T, answers, answer_name in (("test_clips", test_clips, 8, visible_8, "visible_8"),
                                                 ("long_clips", long_clips, 16, visible_16, "visible_16")):
        if not _given(clips, name) or any(clip.num_frames != T for clip in clips):
            raise NotYet(f"`{name}` should be clips of {T} frames" + (": make them with VideoConfig(num_frames=16)" if T == 16 else ""))
        missing = [start for start in range(4) if start not in _given(answers, answer_name)]
        if missing:
            raise NotYet(f"`{answer_name}` has no share yet for start = {missing}")
        for start in range(4):
            kept = every_kth_frame(T, 4, start)
            want = sum(_visible(clip, kept) for clip in clips) / len(clips)
            if not _close(_number(answers[start], f"{answer_name}[{start}]"), want, 1e-6):
                raise NotYet(f"{answer_name}[{start}] is not the share of `{name}` whose change is visible in every 4th frame from "
                             f"{start}: a change at frame c shows when a kept frame is before c and another at or after c")
    return "the span of the kept frames, not the start, decides how many events a fixed frame rate sees"


# ---------------------------------------------------------------- lesson 12 · real checkpoints


TINYLLAMA = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
             "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "rms_norm_eps": 1e-5}


@checker
def check_12_exercise_2(config: Any, params: Any, kv_bytes: Any) -> str:
    """Lesson 12, exercise 2: TinyLlama-1.1B mapped with config_from_hf, its parameters, and its fp16 KV cache for 2048 tokens."""
    want = config_from_hf(TINYLLAMA)
    if not isinstance(_given(config, "config"), type(want)):
        raise NotYet(f"`config` should be what config_from_hf(tinyllama) returns, got {type(config).__name__}")
    if config != want:
        raise NotYet("`config` differs from TinyLlama's config.json mapped with config_from_hf: map the `tinyllama` dict as it is")
    if _number(params, "params") != llm_parameters(want):
        raise NotYet("`params` is not TinyLlama's parameter count: count the skeleton's parameters (or count_parameters(config))")
    got = _number(kv_bytes, "kv_bytes")
    if got != kv_cache_bytes(want, 2048):
        hint = ("that is the cache of 32 key/value heads; TinyLlama keeps only 4"
                if got == kv_cache_bytes(dataclasses.replace(want, num_key_value_heads=32), 2048)
                else "use kv_cache_bytes(config, 2048): fp16, keys and values of every layer")
        raise NotYet(f"`kv_bytes` is not TinyLlama's fp16 KV cache for 2048 tokens: {hint}")
    return "grouped-query attention makes TinyLlama's cache 8.7x smaller than MobileLLaMA-1.4B's; why refusing Qwen2 is right is in the solution"


@checker
def check_12_exercise_4(saved: Any, tiny_tied: Any, folder: Any) -> str:
    """Lesson 12, exercise 4: what tying saves in MobileLLaMA-1.4B, and a tiny tied model exported with its matrix stored once."""
    big = preset("mobilellama-1.4b")
    got = _number(saved, "saved")
    if got != big.vocab_size * big.hidden_size:
        hint = "that is in fp16 bytes; count parameters" if got == 2 * big.vocab_size * big.hidden_size else \
            "compare count_parameters of the untied and the tied config"
        raise NotYet(f"`saved` is not the number of parameters tying saves in MobileLLaMA-1.4B: {hint}")
    if not isinstance(_given(tiny_tied, "tiny_tied"), MobileLlama) or not tiny_tied.config.tie_word_embeddings:
        raise NotYet("`tiny_tied` should be a MobileLlama built from preset('tiny', ..., tie_word_embeddings=True)")
    if tiny_tied.lm_head.weight is not tiny_tied.model.embed_tokens.weight:
        raise NotYet("the tied model's lm_head and embeddings are not the same tensor")
    path = Path(_given(folder, "folder")) / WEIGHTS
    if not path.exists():
        raise NotYet(f"no {WEIGHTS} in {folder}: pass the folder export_llama returned")
    with safe_open(str(path), framework="pt") as stored:
        names = set(stored.keys())
    if "lm_head.weight" in names or "model.embed_tokens.weight" not in names:
        raise NotYet("the exported file should store the shared matrix once, as model.embed_tokens.weight, and no lm_head.weight")
    return f"tying saves {got / 1e6:.1f}M parameters in MobileLLaMA-1.4B, and the file stores the matrix once"
