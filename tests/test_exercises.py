"""Exercise checkers (mobilevlm_mini.exercises): pass on the solutions' answers, fail helpfully on wrong or unfinished ones."""

import copy
import dataclasses
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import nn

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.attention import GatedCrossAttentionBlock, MultiHeadAttention, attention, causal_mask
from mobilevlm_mini.bench import bytes_per_token
from mobilevlm_mini.config import QUICK_ENV, VLMConfig
from mobilevlm_mini.contrastive import default_recipe, default_text_tuning
from mobilevlm_mini.data import COARSE_TYPES, COLOURS, FINE_TYPES, SHAPES
from mobilevlm_mini.hf import config_from_hf, export_llama
from mobilevlm_mini.language import MobileLlama, count_parameters, kv_cache_bytes, preset
from mobilevlm_mini.model import IGNORE, MobileVLM, encode_turns
from mobilevlm_mini.patches import num_patches, patchify, sincos_1d, sincos_2d, unpatchify
from mobilevlm_mini.photos import load_sample_photo
from mobilevlm_mini.projectors import build_projector, count_parameters as projector_parameters, influence_map
from mobilevlm_mini.quant import QuantLinear, QuantSpec, agreement, quantize, quantize_model, size_on_disk
from mobilevlm_mini.tokenizer import Tokenizer
from mobilevlm_mini.video import VideoConfig, every_kth_frame, make_clips


def passes(capsys, result: bool) -> str:
    out = capsys.readouterr().out
    assert result is True, out
    assert out.startswith("correct: "), out
    return out


def fails(capsys, result: bool, *phrases: str, hidden: tuple[str, ...] = ()) -> str:
    """The checker returned False and printed a "not yet" line containing every phrase and none of `hidden`."""
    out = capsys.readouterr().out
    assert result is False, out
    assert out.startswith("not yet: "), out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in {out!r}"
    for secret in hidden:
        assert secret not in out, f"the message gives away {secret!r}: {out!r}"
    return out


def raises_not_implemented(*args, **kwargs):
    raise NotImplementedError


# ---------------------------------------------------------------- every starter runs: unfinished answers never raise

STARTERS = {
    "check_00_exercise_1": (None, None),
    "check_00_exercise_2": (None, None, None),
    "check_00_exercise_3": (raises_not_implemented, nn.Linear(64, 96), None),
    "check_00_exercise_4": (None, None),
    "check_01_exercise_1": (None, None, None),
    "check_01_exercise_2": ({}, {}),
    "check_01_exercise_3": (raises_not_implemented,),
    "check_01_exercise_4": (None, None, None),
    "check_02_exercise_1": ({},),
    "check_02_exercise_2": ({},),
    "check_02_exercise_3": (None, None, None),
    "check_02_exercise_4": (None, None),
    "check_03_exercise_1": (None, None),
    "check_03_exercise_2": (None, None),
    "check_03_exercise_3": (raises_not_implemented, None),
    "check_03_exercise_4": (None, None),
    "check_04_exercise_1": ({}, default_recipe(quick=True)),
    "check_04_exercise_3": (raises_not_implemented,),
    "check_04_exercise_4": ({}, default_text_tuning(quick=True)),
    "check_05_exercise_1": (None, None, {}),
    "check_05_exercise_2": ({}, None),
    "check_05_exercise_3": (raises_not_implemented, raises_not_implemented, None),
    "check_06_exercise_1": (lambda x, positions, base=10000.0: x,),
    "check_06_exercise_2": (None, None, None),
    "check_06_exercise_3": (lambda logits, min_p: logits,),
    "check_07_exercise_1": (None, torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), Tokenizer.default()),
    "check_07_exercise_2": (None, None, None, None, None),
    "check_08_exercise_1": (raises_not_implemented,),
    "check_09_exercise_1": (None, {}),
    "check_09_exercise_2": (None, {}, {}, None),
    "check_09_exercise_3": (torch.ones(4, 32), torch.ones(4, 32), {}),
    "check_10_exercise_2": (None, None, None),
    "check_11_exercise_1": (lambda num_frames, n: list(range(n)),),
    "check_11_exercise_2": ([], {}, None, {}),
    "check_12_exercise_2": (None, None, None),
    "check_12_exercise_4": (None, None, None),
}


def test_every_checker_has_a_starter_case_and_a_docstring():
    checkers = sorted(name for name in dir(ex) if name.startswith("check_"))
    assert checkers == sorted(STARTERS)
    for name in checkers:
        assert getattr(ex, name).__doc__.startswith("Lesson "), name


@pytest.mark.parametrize("name", sorted(STARTERS))
def test_unfinished_starter_prints_what_is_missing(capsys, name):
    fails(capsys, getattr(ex, name)(*STARTERS[name]))


def test_a_crash_in_the_learners_code_is_reported_not_raised(capsys):
    fails(capsys, ex.check_06_exercise_1(lambda x, positions, base=1.0: x @ x), "`rope_complex(", "raised RuntimeError")


# ---------------------------------------------------------------- lesson 00


def test_00_exercise_1(capsys):
    done = subprocess.CompletedProcess([sys.executable, "-m", "mobilevlm_mini", "doctor"], returncode=0)
    passes(capsys, ex.check_00_exercise_1(done, 50))
    failed = subprocess.CompletedProcess(done.args, returncode=1)
    fails(capsys, ex.check_00_exercise_1(failed, 50), "exited with code 1", "FAIL lines")
    fails(capsys, ex.check_00_exercise_1(done, 2000), "MOBILEVLM_MINI_QUICK")
    other = subprocess.CompletedProcess([sys.executable, "-m", "mobilevlm_mini", "--help"], returncode=0)
    fails(capsys, ex.check_00_exercise_1(other, 50), "did not run the `doctor`")


def test_00_exercise_1_wants_quick_mode_restored(capsys, monkeypatch):
    monkeypatch.setenv(QUICK_ENV, "maybe" if ex._QUICK_AT_IMPORT != "maybe" else "other")
    done = subprocess.CompletedProcess(["python", "-m", "mobilevlm_mini", "doctor"], returncode=0)
    fails(capsys, ex.check_00_exercise_1(done, 50), "put it back")


def test_00_exercise_2(capsys):
    llava = num_patches(336, 336, 14)
    ratio = (llava + 32) ** 2 / (llava // 4 + 32) ** 2
    passes(capsys, ex.check_00_exercise_2(llava, ratio, num_patches(448, 448, 14) // 4))
    fails(capsys, ex.check_00_exercise_2(144, ratio, 256), "(a)", "MLP projector keeps every token", hidden=("576",))
    fails(capsys, ex.check_00_exercise_2(576, 1 / ratio, 256), "(b)", "turn the ratio around", hidden=("11.9",))
    fails(capsys, ex.check_00_exercise_2(576, 16, 256), "(b)", "32 question tokens")
    fails(capsys, ex.check_00_exercise_2(576, ratio, 1024), "(c)", "1 token in 4", hidden=("256",))


def test_00_exercise_3(capsys):
    torch.manual_seed(0)
    to_llm = nn.Linear(64, 96)

    def project_9x(features):  # the solution's
        pooled = F.avg_pool2d(rearrange(features, "b (h w) d -> b d h w", h=6), 3)
        return to_llm(rearrange(pooled, "b d h w -> b (h w) d"))

    def project_4x(features):  # the lesson's 2 x 2 projector
        pooled = F.avg_pool2d(rearrange(features, "b (h w) d -> b d h w", h=6), 2)
        return to_llm(rearrange(pooled, "b d h w -> b (h w) d"))

    def columns_first(features):
        pooled = F.avg_pool2d(rearrange(features, "b (w h) d -> b d h w", h=6), 3)
        return to_llm(rearrange(pooled, "b d h w -> b (h w) d"))

    passes(capsys, ex.check_00_exercise_3(project_9x, to_llm, 10))
    fails(capsys, ex.check_00_exercise_3(project_4x, to_llm, 10), "2 x 2 projector")
    fails(capsys, ex.check_00_exercise_3(columns_first, to_llm, 10), "rows and columns")
    fails(capsys, ex.check_00_exercise_3(project_9x, to_llm, 15), "`tokens_read`", "2 x 2 projector's count", hidden=("10",))
    fails(capsys, ex.check_00_exercise_3(project_9x, to_llm, 22), "`tokens_read`", hidden=("10",))


def test_00_exercise_4(capsys):
    passes(capsys, ex.check_00_exercise_4(0.3, 0.0))
    passes(capsys, ex.check_00_exercise_4(torch.tensor([0.0, -0.2]), torch.zeros(3)))
    fails(capsys, ex.check_00_exercise_4(0.0, 0.0), "encoder's first output token did not change")
    fails(capsys, ex.check_00_exercise_4(0.3, 0.05), "LLM's first output moved")


# ---------------------------------------------------------------- lesson 01


def test_01_exercise_1(capsys):
    image = load_sample_photo(72)[:, 12:60, :]
    tokens = patchify(image[None], 8)
    pos = sincos_2d(6, 9, 64)
    passes(capsys, ex.check_01_exercise_1(tokens, divmod(10, 9), pos))
    passes(capsys, ex.check_01_exercise_1(tokens[0], (1, 1), sincos_2d(6, 9, 32)))
    fails(capsys, ex.check_01_exercise_1(patchify(load_sample_photo(72)[None], 8), (1, 1), pos), "count the 8 x 8 patches",
          hidden=("54 tokens",))
    fails(capsys, ex.check_01_exercise_1(patchify(image.flip(-1)[None], 8), (1, 1), pos), "reading order")
    fails(capsys, ex.check_01_exercise_1(tokens, divmod(10, 6), pos), "token 10 is not at that place", hidden=("(1, 1)",))
    fails(capsys, ex.check_01_exercise_1(tokens, (1, 1), sincos_2d(9, 6, 64)), "swaps the grid's height and width")
    fails(capsys, ex.check_01_exercise_1(tokens, (1, 1), sincos_2d(6, 9, 64) * 2), "not the 2-D sin-cos")


def _mean_colour_solution(photo128):
    results = {}
    for P in (4, 8, 16, 32):  # the solution's loop
        patches = patchify(photo128[None], P)
        means = reduce(patches, "b n (pq c) -> b n c", "mean", c=3)
        recon = unpatchify(repeat(means, "b n c -> b n (pq c)", pq=P * P), P, 128, 128)[0]
        results[P] = (recon, F.mse_loss(recon, photo128).item())
    return {P: r for P, (r, _) in results.items()}, {P: e for P, (_, e) in results.items()}


def test_01_exercise_2(capsys):
    photo128 = load_sample_photo(128)
    reconstructions, errors = _mean_colour_solution(photo128)
    passes(capsys, ex.check_01_exercise_2(reconstructions, errors))
    fails(capsys, ex.check_01_exercise_2({4: reconstructions[4]}, errors), "no entry yet for P = [8, 16, 32]")
    wrong = reconstructions | {16: F.avg_pool2d(photo128[None], 3, 1, 1)[0]}  # a blur, not patch means
    fails(capsys, ex.check_01_exercise_2(wrong, errors), "reconstructions[16]", "mean colour")
    fails(capsys, ex.check_01_exercise_2(reconstructions, errors | {8: errors[8] ** 0.5}), "errors[8]", "mean squared error")


def test_01_exercise_3(capsys):
    def patch_embed_params(P, C, D, bias=True):  # the solution's
        return P * P * C * D + (D if bias else 0)

    passes(capsys, ex.check_01_exercise_3(patch_embed_params))
    fails(capsys, ex.check_01_exercise_3(lambda P, C, D, bias=True: P * P * C * D + D), "bias=False", "no bias")
    fails(capsys, ex.check_01_exercise_3(lambda P, C, D, bias=True: P * C * D + (D if bias else 0)), "weights and biases")
    fails(capsys, ex.check_01_exercise_3(lambda P, C, D: P * P * C * D + D), "unexpected keyword argument 'bias'")


def test_01_exercise_4(capsys):
    pos_1d = sincos_1d(torch.arange(36), 64)
    passes(capsys, ex.check_01_exercise_4(pos_1d, (5, 6), [6, 0]))
    fails(capsys, ex.check_01_exercise_4(sincos_2d(6, 6, 64), (5, 6), (0, 6)), "`pos_1d` is not")
    fails(capsys, ex.check_01_exercise_4(sincos_1d(torch.arange(64), 64), (5, 6), (0, 6)), "`pos_1d` is not")
    fails(capsys, ex.check_01_exercise_4(pos_1d, (0, 6), (0, 6)), "`more_alike_1d` is not the pair", "1-D")
    fails(capsys, ex.check_01_exercise_4(pos_1d, (5, 6), (5, 6)), "`more_alike_2d` is not the pair", "2-D")
    fails(capsys, ex.check_01_exercise_4(pos_1d, (7, 8), (0, 6)), "one of the two pairs")


# ---------------------------------------------------------------- lesson 02


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
    fails(capsys, ex.check_02_exercise_2(_face_maps(alphas=(0.0, 0.75, 1.25)[::-1]) | {0.0: maps[1.25], 1.25: maps[0.0]}),
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
    fails(capsys, ex.check_02_exercise_3(torch.ones(2, 6, dtype=torch.bool).tril(), last_two, full), "positions 4 and 5")
    fails(capsys, ex.check_02_exercise_3(mask.int(), last_two, full), "boolean")
    unmasked, _ = attention(q[-2:], k, v)
    fails(capsys, ex.check_02_exercise_3(mask, unmasked + 1, full), "differs from the last 2 rows of `full`")


def test_02_exercise_4(capsys):
    budget = 8 * 2**30
    side = 14
    while ex._attention_bytes(side + 14) <= budget:  # the solution's search
        side += 14
    passes(capsys, ex.check_02_exercise_4(side, (side // 14) ** 2))
    fails(capsys, ex.check_02_exercise_4(side - 14, (side // 14 - 1) ** 2), "a larger side", hidden=(str(side),))
    fails(capsys, ex.check_02_exercise_4(side + 14, (side // 14 + 1) ** 2), "more than 8 GiB")
    fails(capsys, ex.check_02_exercise_4(800, 3265), "multiple of 14")
    fails(capsys, ex.check_02_exercise_4(side, side // 14), "`tokens`")


# ---------------------------------------------------------------- lesson 03


def _layouts(n_img: int = 64) -> dict:
    """The solution's (N, N) text-query-may-see-image-key matrices, and which positions are image tokens."""
    text = "USER: what colour is the flag ? ASSISTANT:".split()
    results = {}
    for name, after in (("after", 0), ("end", len(text) - 1)):
        kinds = ["text"] * (after + 1) + ["image"] * n_img + ["text"] * (len(text) - after - 1)
        is_img = torch.tensor([k == "image" for k in kinds])
        results[name] = causal_mask(len(kinds)) & ~is_img[:, None] & is_img[None, :], is_img
    return results


def test_03_exercise_1(capsys):
    (after, is_img_after), (end, is_img_end) = _layouts().values()
    passes(capsys, ex.check_03_exercise_1(after, end))
    compact_after, compact_end = after[~is_img_after][:, is_img_after], end[~is_img_end][:, is_img_end]  # (8, 64)
    passes(capsys, ex.check_03_exercise_1(compact_after, compact_end))
    (small_after, _), (small_end, _) = _layouts(16).values()
    passes(capsys, ex.check_03_exercise_1(small_after.int(), small_end))
    no_causal = ~is_img_after[:, None] & is_img_after[None, :]  # every text token sees the image, 'USER:' too
    fails(capsys, ex.check_03_exercise_1(no_causal, end), "right after 'USER:'", "not (text query, image key) pairs")
    fails(capsys, ex.check_03_exercise_1(after, compact_after), "at the end", "are wrong")
    fails(capsys, ex.check_03_exercise_1(compact_after & False, compact_end), "right after 'USER:'", "are missing")
    fails(capsys, ex.check_03_exercise_1(torch.ones(5, 3, dtype=torch.bool), end), "has shape (5, 3)")


def test_03_exercise_2(capsys):
    torch.manual_seed(0)
    student = GatedCrossAttentionBlock(64, 4, context_dim=48)  # the solution's
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        teacher.attn_gate.fill_(1.0)
        teacher.mlp_gate.fill_(1.0)
    untrained = copy.deepcopy(student)
    text, image = torch.randn(4, 9, 64), torch.randn(4, 64, 48)
    with torch.no_grad():
        target = teacher(text, image)
    everything = copy.deepcopy(student)
    for model, parameters in ((student, [student.attn_gate, student.mlp_gate]), (everything, list(everything.parameters()))):
        optimizer = torch.optim.Adam(parameters, lr=0.05)
        for _ in range(40):  # quick mode's steps(150, 40)
            loss = F.mse_loss(model(text, image), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    passes(capsys, ex.check_03_exercise_2(student, teacher))
    fails(capsys, ex.check_03_exercise_2(untrained, teacher), "still at 0")
    fails(capsys, ex.check_03_exercise_2(everything, teacher), "differs from the teacher's", "only the two gates")
    fails(capsys, ex.check_03_exercise_2(student, untrained), "set both of the teacher's gates")
    fails(capsys, ex.check_03_exercise_2(student, student), "a copy of the student")


def test_03_exercise_3(capsys):
    D = 2048

    def layer_flops(n):  # the solution's
        return 4 * n * n * D, 24 * n * D * D

    total = {n_img: sum(layer_flops(n_img + 64)) for n_img in (576, 144)}
    speedup = total[576] / total[144]
    passes(capsys, ex.check_03_exercise_3(layer_flops, speedup))
    fails(capsys, ex.check_03_exercise_3(layer_flops, 4.0), "add the 64 text tokens", hidden=(f"{speedup:.1f}",))
    fails(capsys, ex.check_03_exercise_3(layer_flops, 1 / speedup), "turn it around")
    fails(capsys, ex.check_03_exercise_3(lambda n: (2 * n * n * D, 24 * n * D * D), speedup), "attention-score FLOPs")
    fails(capsys, ex.check_03_exercise_3(lambda n: 4 * n * n * D + 24 * n * D * D, speedup), "two numbers")


def test_03_exercise_4(capsys):
    latents = nn.Parameter(torch.randn(1, 8, 64))  # the solution's
    resampler = MultiHeadAttention(64, 4, context_dim=48)
    passes(capsys, ex.check_03_exercise_4(resampler, latents))
    fails(capsys, ex.check_03_exercise_4(resampler, latents.detach()), "nn.Parameter")
    fails(capsys, ex.check_03_exercise_4(MultiHeadAttention(64, 4), latents), "context_dim=48")
    fails(capsys, ex.check_03_exercise_4(resampler, nn.Parameter(torch.randn(8, 64))), "(1, 8, 64)")


# ---------------------------------------------------------------- lesson 05


def test_05_exercise_1(capsys):
    names = ["pool", "pixel_shuffle"]
    pool, shuffle = (build_projector(name, 32, 16, factor=3) for name in names)
    real = {name: projector_parameters(build_projector(name, 1024, 2048, factor=3)) for name in names}
    passes(capsys, ex.check_05_exercise_1(pool, shuffle, real))
    fails(capsys, ex.check_05_exercise_1(build_projector("pool", 32, 16), shuffle, real), "`pool` turns 576 tokens into 144")
    fails(capsys, ex.check_05_exercise_1(shuffle, pool, real), "should be built with build_projector('pool'")
    wrong = dict(real, pixel_shuffle=projector_parameters(build_projector("pixel_shuffle", 1024, 2048)))
    fails(capsys, ex.check_05_exercise_1(pool, shuffle, wrong), "real_params['pixel_shuffle']", hidden=(str(real["pixel_shuffle"]),))


def _window_counts() -> tuple[dict, tuple]:
    torch.manual_seed(0)
    x = torch.randn(576, 32)  # MobileVLM's 24 x 24 grid, small widths

    def compare(projector):  # the solution's read() and compare()
        read = [influence_map(projector, x, j) for j in (65, 66)]
        a, b = (values > 0.01 * values.max() for values in read)
        return int(a.sum()), int((a & b).sum())

    counts = {name: compare(build_projector(name, 32, 16)) for name in ["ldp", "ldpv2", "pool", "pixel_shuffle"]}
    disjoint = build_projector("ldp", 32, 16)
    disjoint.block2.depthwise = nn.Conv2d(16, 16, 2, stride=2, groups=16, bias=False)
    return counts, compare(disjoint)


def test_05_exercise_2(capsys):
    counts, disjoint = _window_counts()
    passes(capsys, ex.check_05_exercise_2(counts, disjoint))
    fails(capsys, ex.check_05_exercise_2(dict(counts, ldp=(9, 3)), disjoint), "ldp: output token 65 reads more", hidden=("25",))
    fails(capsys, ex.check_05_exercise_2(dict(counts, pool=(4, 2)), disjoint), "pool:", "both read")
    fails(capsys, ex.check_05_exercise_2(counts, (4, 0)), "the disjoint LDP", "reads more")
    fails(capsys, ex.check_05_exercise_2({"ldp": (25, 15)}, disjoint), "no (read, shared) pair yet", "ldpv2")


def test_05_exercise_3(capsys):
    def ldp_params(d_v, c):  # the solution's
        mlp = d_v * c + c + c * c + c
        block = 9 * c + 4 * c + (c * c // 4 + c // 4) + (c // 4 * c + c) + c * c
        return mlp + 2 * block

    def ldpv2_params(d_v, c):
        return d_v * c + c + c * c + c + 9 * c + c

    width = next(c for c in range(8, 20000, 8) if ldp_params(1024, c) > 100e6)
    passes(capsys, ex.check_05_exercise_3(ldp_params, ldpv2_params, width))
    passes(capsys, ex.check_05_exercise_3(ldp_params, ldpv2_params, 4870))
    no_layernorms = lambda d_v, c: ldp_params(d_v, c) - 8 * c  # noqa: E731
    fails(capsys, ex.check_05_exercise_3(no_layernorms, ldpv2_params, width), "ldp_params(1024, 2048)", "term by term")
    fails(capsys, ex.check_05_exercise_3(ldp_params, lambda d_v, c: d_v * c + c + c * c + c, width), "ldpv2_params(")
    fails(capsys, ex.check_05_exercise_3(ldp_params, ldpv2_params, 4096), "fewer than 100M", "go wider")
    fails(capsys, ex.check_05_exercise_3(ldp_params, ldpv2_params, 10000), "well below width 10000")


# ---------------------------------------------------------------- lesson 06


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
    fails(capsys, ex.check_06_exercise_1(lambda x, positions: rope_complex(x, positions)), "unexpected keyword argument 'base'")
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
    fails(capsys, ex.check_06_exercise_3(lambda logits, min_p: min_p_filter(logits.mul_(1.0).add_(1.0), min_p)), "in place")


# ---------------------------------------------------------------- lesson 04


def _batch_recipes(short, same_steps: bool = False) -> dict:
    recipes = {}
    for loss in ("clip", "siglip"):  # the solution's
        for batch in (16, 128):
            steps = short.steps if same_steps else short.steps * short.batch_size // batch
            recipes[loss, batch] = dataclasses.replace(short, batch_size=batch, steps=steps,
                                                       model=dataclasses.replace(short.model, loss=loss))
    return recipes


def test_04_exercise_1(capsys):
    short = dataclasses.replace(default_recipe(quick=True), steps=8, batch_size=32)
    recipes = _batch_recipes(short)
    passes(capsys, ex.check_04_exercise_1(recipes, short))
    fails(capsys, ex.check_04_exercise_1(_batch_recipes(short, same_steps=True), short), "same number of images", "clip at 16: 128")
    fails(capsys, ex.check_04_exercise_1({**recipes, ("siglip", 16): recipes["clip", 16]}, short), "'clip' loss")
    fails(capsys, ex.check_04_exercise_1({**recipes, ("clip", 16): dataclasses.replace(recipes["clip", 16], lr=1e-2)}, short),
          "changes more than")
    fails(capsys, ex.check_04_exercise_1({("clip", 16): recipes["clip", 16]}, short), "no recipe yet", "('siglip', 128)")


def test_04_exercise_3(capsys):
    def largest_shape(objects):  # the solution's
        return SHAPES.index(max(objects, key=lambda o: o["size"] == "large")["shape"])

    passes(capsys, ex.check_04_exercise_3(largest_shape))
    fails(capsys, ex.check_04_exercise_3(lambda objects: SHAPES.index(objects[0]["shape"])), "pick the object whose size is 'large'")
    fails(capsys, ex.check_04_exercise_3(lambda objects: next(o["shape"] for o in objects if o["size"] == "large")), "index in data.SHAPES")


def test_04_exercise_4(capsys):
    tuning = default_text_tuning(quick=True)
    tunings = {w: dataclasses.replace(tuning, whole_scene=w) for w in (0.0, 1.0)}
    passes(capsys, ex.check_04_exercise_4(tunings, tuning))
    fails(capsys, ex.check_04_exercise_4({0.0: tunings[0.0]}, tuning), "no tuning yet", "[1.0]")
    fails(capsys, ex.check_04_exercise_4({**tunings, 1.0: tunings[0.0]}, tuning), "whole_scene = 0.0")
    fails(capsys, ex.check_04_exercise_4({**tunings, 1.0: dataclasses.replace(tunings[1.0], steps=5)}, tuning), "changes more than")
    fails(capsys, ex.check_04_exercise_4(tunings, None), "second argument")


# ---------------------------------------------------------------- lesson 07


@pytest.fixture(scope="module")
def vlm() -> MobileVLM:
    torch.manual_seed(0)
    return MobileVLM(VLMConfig()).eval()  # untrained, at the course's sizes


def _conversations(tok: Tokenizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A right-padded batch of two whole conversations: (input_ids, attention_mask, answer-only labels)."""
    turns = [[("what colour is the circle ?", "red"), ("how many shapes are there ?", "two")], [("is there a cross ?", "no")]]
    pairs = [encode_turns(tok, t) for t in turns]
    ids, mask = tok.pad([p[0] for p in pairs])
    labels = torch.full_like(ids, IGNORE)
    for row, (_, answer_labels) in enumerate(pairs):
        labels[row, : len(answer_labels)] = torch.as_tensor(answer_labels)
    return ids, mask, labels


def test_07_exercise_1(capsys):
    tok = Tokenizer.default()
    ids, mask, answer_labels = _conversations(tok)
    assert (mask == 0).any() and (ids == tok.image_id).any()
    all_labels = ids.masked_fill(mask == 0, IGNORE).masked_fill(ids == tok.image_id, IGNORE)  # the solution's
    passes(capsys, ex.check_07_exercise_1(all_labels, ids, mask, tok))
    passes(capsys, ex.check_07_exercise_1(ids.masked_fill(mask == 0, IGNORE), ids, mask, tok))
    fails(capsys, ex.check_07_exercise_1(ids, ids, mask, tok), "padding positions", "IGNORE")
    fails(capsys, ex.check_07_exercise_1(answer_labels, ids, mask, tok), "still IGNORE", "not only the answers")
    shifted = torch.cat([all_labels[:, 1:], all_labels[:, :1]], dim=1).masked_fill(mask == 0, IGNORE)
    fails(capsys, ex.check_07_exercise_1(shifted, ids, mask, tok), "its own id")
    fails(capsys, ex.check_07_exercise_1(all_labels[:, 1:], ids, mask, tok), "one label per id")


def test_07_exercise_2(capsys, vlm):
    tok, question = vlm.tokenizer, "what colour is the circle ?"
    features = vlm.encode_images(torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0)))
    input_ids, attention_mask = vlm.prompts([question])
    with torch.no_grad():
        probs = vlm(input_ids, features, attention_mask).logits[0, -1].softmax(-1)  # the solution's
    p = torch.stack([probs[tok.ids[c]] for c in COLOURS])
    sharpened = (p.log() / 0.5).softmax(0)
    passes(capsys, ex.check_07_exercise_2(vlm, features, question, p, sharpened))
    passes(capsys, ex.check_07_exercise_2(vlm, features, question, p / p.sum(), sharpened))
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p, (p.log() * 0.5).softmax(0)), "flatter", "softmax(logits / T)")
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p.flip(0), sharpened), "`p` is not")
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p.log(), sharpened), "softmax")
    fails(capsys, ex.check_07_exercise_2(vlm, features[0], question, p, sharpened), "(1, K, D)")
    fails(capsys, ex.check_07_exercise_2(vlm, features, question, p[:3], sharpened), "one probability per colour")


# ---------------------------------------------------------------- lesson 08


def test_08_exercise_1(capsys):
    def per_image(records, kinds, n_images=16):  # the solution's, with its test split's size as a default
        right, asked = torch.zeros(n_images), torch.zeros(n_images)
        for r in records:
            if r["type"] in kinds:
                right[r["image"]] += r["answer"] == r["predicted"]
                asked[r["image"]] += 1
        return right, asked

    def every_type(records, kinds):
        return per_image(records, COARSE_TYPES + FINE_TYPES)

    def asked_for_right(records, kinds):
        right, asked = per_image(records, kinds)
        return right, right

    passes(capsys, ex.check_08_exercise_1(per_image))
    passes(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds, n_images=4)))
    fails(capsys, ex.check_08_exercise_1(every_type), "questions asked per image are wrong for kinds=COARSE_TYPES")
    fails(capsys, ex.check_08_exercise_1(asked_for_right), "questions asked")
    fails(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds)[::-1]), "questions asked")
    fails(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds, n_images=2)), "raised IndexError")
    fails(capsys, ex.check_08_exercise_1(lambda records, kinds: per_image(records, kinds)[0]), "two tensors")


# ---------------------------------------------------------------- lesson 09


KEEP = ("vit", "projector")


def test_09_exercise_1(capsys, vlm):
    sizes = {("symmetric" if s else "asymmetric"): size_on_disk(quantize_model(vlm, bits=4, group_size=32, symmetric=s, skip=KEEP).llm)
             for s in (True, False)}  # the solution's
    passes(capsys, ex.check_09_exercise_1(vlm, sizes))
    fails(capsys, ex.check_09_exercise_1(vlm, {"symmetric": sizes["asymmetric"], "asymmetric": sizes["symmetric"]}), "should be larger")
    whole = size_on_disk(quantize_model(vlm, bits=4, group_size=32, symmetric=False, skip=KEEP))
    fails(capsys, ex.check_09_exercise_1(vlm, dict(sizes, asymmetric=whole)), "sizes['asymmetric']", "size_on_disk(q4.llm)")
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
    fails(capsys, ex.check_09_exercise_2(vlm, {g: 4.0 for g in bits}, agreements, width), "count the float16 scales too")
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
    everything = dict(errors, channel=((quantize(weight, QuantSpec(4, True, "channel")).dequantize() - weight).norm() / weight.norm()).item())
    fails(capsys, ex.check_09_exercise_3(original, weight, everything), "errors['channel']", "every weight but the outlier")
    fails(capsys, ex.check_09_exercise_3(original, weight, {"tensor": 1.0}), "['channel', 'group']")


# ---------------------------------------------------------------- lesson 10


def test_10_exercise_2(capsys, vlm):
    llm = vlm.llm
    weights_tiny = bytes_per_token(llm, 0)  # the solution's
    per_position_tiny = bytes_per_token(llm, 1) - weights_tiny
    real = preset("mobilellama-1.4b")
    weights_real, per_position_real = count_parameters(real) * 4 / 8, kv_cache_bytes(real, 1)
    tiny, full = weights_tiny / per_position_tiny, weights_real / per_position_real
    passes(capsys, ex.check_10_exercise_2(llm, tiny, full))
    passes(capsys, ex.check_10_exercise_2(llm, int(tiny), round(full)))
    fails(capsys, ex.check_10_exercise_2(llm, 2 * tiny, full), "`tiny_positions`", "fp32")
    fails(capsys, ex.check_10_exercise_2(llm, tiny, 4 * full), "half a byte")
    fails(capsys, ex.check_10_exercise_2(llm, tiny, full / 2), "fp16 (2 bytes a value)")
    fails(capsys, ex.check_10_exercise_2(llm, tiny, 3 * full), "`real_positions`", hidden=(f"{full:.0f}",))


# ---------------------------------------------------------------- lesson 11


def test_11_exercise_1(capsys):
    def segment_frames(num_frames, n):  # the solution's
        return [int((i + 0.5) * num_frames / n) for i in range(n)]

    passes(capsys, ex.check_11_exercise_1(segment_frames))
    fails(capsys, ex.check_11_exercise_1(lambda num_frames, n: [round((i + 0.5) * num_frames / n) for i in range(n)]),
          "segment_frames(8, 3)", "floor")
    fails(capsys, ex.check_11_exercise_1(lambda num_frames, n: [round(i * (num_frames - 1) / max(1, n - 1)) for i in range(n)]),
          "segment_frames(8, 1)")
    fails(capsys, ex.check_11_exercise_1(lambda num_frames, n: "0 4"), "a list of frame indices")


def test_11_exercise_2(capsys):
    config = VideoConfig(kinds=("move", "colour"))
    test_clips = make_clips(6, seed=3_000, config=config)
    long_clips = make_clips(6, seed=3_000, config=dataclasses.replace(config, num_frames=16))

    def visible_fraction(kept, clips):  # the solution's
        return sum(min(kept) < clip.change_at <= max(kept) for clip in clips) / len(clips)

    visible_8 = {start: visible_fraction(every_kth_frame(8, 4, start), test_clips) for start in range(4)}
    visible_16 = {start: visible_fraction(every_kth_frame(16, 4, start), long_clips) for start in range(4)}
    passes(capsys, ex.check_11_exercise_2(test_clips, visible_8, long_clips, visible_16))
    fails(capsys, ex.check_11_exercise_2(test_clips, visible_8, test_clips, visible_16), "clips of 16 frames", "num_frames=16")
    with_last = {start: visible_fraction(every_kth_frame(8, 4, start) + [8 - 1], test_clips) for start in range(4)}
    assert with_last[0] != visible_8[0]  # keeping the last frame too sees more changes
    fails(capsys, ex.check_11_exercise_2(test_clips, with_last, long_clips, visible_16), "visible_8[0]", "every 4th frame from 0")
    at_or_before = {start: sum(min(k) <= c.change_at <= max(k) for c in long_clips for k in [every_kth_frame(16, 4, start)]) / 6
                    for start in range(4)}
    fails(capsys, ex.check_11_exercise_2(test_clips, visible_8, long_clips, at_or_before), "visible_16[")
    fails(capsys, ex.check_11_exercise_2(test_clips, {0: 0.5}, long_clips, visible_16), "no share yet for start = [1, 2, 3]")


# ---------------------------------------------------------------- lesson 12


def test_12_exercise_2(capsys):
    tinyllama = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
                 "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "rms_norm_eps": 1e-5}
    config = config_from_hf(tinyllama)  # the solution's
    passes(capsys, ex.check_12_exercise_2(config, count_parameters(config), kv_cache_bytes(config, 2048)))
    no_gqa = config_from_hf({**tinyllama, "num_key_value_heads": 32})
    fails(capsys, ex.check_12_exercise_2(config, count_parameters(config), kv_cache_bytes(no_gqa, 2048)), "32 key/value heads")
    fails(capsys, ex.check_12_exercise_2(no_gqa, count_parameters(no_gqa), kv_cache_bytes(no_gqa, 2048)), "`config` differs")
    fails(capsys, ex.check_12_exercise_2(config, count_parameters(no_gqa), kv_cache_bytes(config, 2048)), "`params`",
          hidden=(f"{count_parameters(config):,}", str(count_parameters(config))))
    fails(capsys, ex.check_12_exercise_2(config, count_parameters(config), kv_cache_bytes(config, 2048, bytes_per_value=4)), "fp16")
    fails(capsys, ex.check_12_exercise_2(tinyllama, 1, 1), "should be what config_from_hf")


def test_12_exercise_4(capsys, tmp_path):
    big = preset("mobilellama-1.4b")
    saved = count_parameters(big) - count_parameters(preset("mobilellama-1.4b", tie_word_embeddings=True))  # the solution's
    vocab = Tokenizer.default().vocab_size
    torch.manual_seed(0)
    tiny_tied = MobileLlama(preset("tiny", vocab_size=vocab, tie_word_embeddings=True)).eval()
    folder = export_llama(tiny_tied, tmp_path / "tied")
    passes(capsys, ex.check_12_exercise_4(saved, tiny_tied, folder))
    fails(capsys, ex.check_12_exercise_4(2 * saved, tiny_tied, folder), "in fp16 bytes")
    fails(capsys, ex.check_12_exercise_4(saved + 1, tiny_tied, folder), "compare count_parameters")
    untied = MobileLlama(preset("tiny", vocab_size=vocab)).eval()
    fails(capsys, ex.check_12_exercise_4(saved, untied, folder), "tie_word_embeddings=True")
    fails(capsys, ex.check_12_exercise_4(saved, tiny_tied, export_llama(untied, tmp_path / "untied")), "no lm_head.weight")
    fails(capsys, ex.check_12_exercise_4(saved, tiny_tied, tmp_path / "nowhere"), "no model.safetensors")
