"""Lesson 01's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import torch
import torch.nn.functional as F
from einops import reduce, repeat

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.patches import patchify, sincos_1d, sincos_2d, unpatchify
from mobilevlm_mini.photos import load_sample_photo

from .helpers import fails, passes


def test_01_exercise_1(capsys):
    image = load_sample_photo(72)[:, 12:60, :]
    tokens = patchify(image[None], 8)
    pos = sincos_2d(6, 9, 64)
    passes(capsys, ex.check_01_exercise_1(tokens, divmod(10, 9), pos))
    passes(capsys, ex.check_01_exercise_1(tokens[0], (1, 1), sincos_2d(6, 9, 32)))
    fails(capsys, ex.check_01_exercise_1(patchify(load_sample_photo(72)[None], 8), (1, 1), pos),
          "count the 8 x 8 patches", hidden=("54 tokens",))
    fails(capsys, ex.check_01_exercise_1(patchify(image.flip(-1)[None], 8), (1, 1), pos), "reading order")
    fails(capsys, ex.check_01_exercise_1(tokens, divmod(10, 6), pos),
          "token 10 is not at that place", hidden=("(1, 1)",))
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
    fails(capsys, ex.check_01_exercise_2(reconstructions, errors | {8: errors[8] ** 0.5}),
          "errors[8]", "mean squared error")


def test_01_exercise_3(capsys):
    def patch_embed_params(P, C, D, bias=True):  # the solution's
        return P * P * C * D + (D if bias else 0)

    passes(capsys, ex.check_01_exercise_3(patch_embed_params))
    fails(capsys, ex.check_01_exercise_3(lambda P, C, D, bias=True: P * P * C * D + D), "bias=False", "no bias")
    fails(capsys, ex.check_01_exercise_3(lambda P, C, D, bias=True: P * C * D + (D if bias else 0)),
          "weights and biases")
    fails(capsys, ex.check_01_exercise_3(lambda P, C, D: P * P * C * D + D), "unexpected keyword argument 'bias'")


def test_01_exercise_4(capsys):
    pos_1d = sincos_1d(torch.arange(36), 64)
    passes(capsys, ex.check_01_exercise_4(pos_1d, (5, 6), [6, 0]))
    fails(capsys, ex.check_01_exercise_4(sincos_2d(6, 6, 64), (5, 6), (0, 6)), "`pos_1d` is not")
    fails(capsys, ex.check_01_exercise_4(sincos_1d(torch.arange(64), 64), (5, 6), (0, 6)), "`pos_1d` is not")
    fails(capsys, ex.check_01_exercise_4(pos_1d, (0, 6), (0, 6)), "`more_alike_1d` is not the pair", "1-D")
    fails(capsys, ex.check_01_exercise_4(pos_1d, (5, 6), (5, 6)), "`more_alike_2d` is not the pair", "2-D")
    fails(capsys, ex.check_01_exercise_4(pos_1d, (7, 8), (0, 6)), "one of the two pairs")
