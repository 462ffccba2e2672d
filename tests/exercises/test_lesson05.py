"""Lesson 05's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import torch
from torch import nn

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.analysis import influence_map
from mobilevlm_mini.analysis import trainable_parameters as projector_parameters
from mobilevlm_mini.projectors import build_projector

from .helpers import fails, passes


def test_05_exercise_1(capsys):
    names = ["pool", "pixel_shuffle"]
    pool, shuffle = (build_projector(name, 32, 16, factor=3) for name in names)
    real = {name: projector_parameters(build_projector(name, 1024, 2048, factor=3)) for name in names}
    passes(capsys, ex.check_05_exercise_1(pool, shuffle, real))
    fails(capsys, ex.check_05_exercise_1(build_projector("pool", 32, 16), shuffle, real),
          "`pool` turns 576 tokens into 144")
    fails(capsys, ex.check_05_exercise_1(shuffle, pool, real), "should be built with build_projector('pool'")
    wrong = dict(real, pixel_shuffle=projector_parameters(build_projector("pixel_shuffle", 1024, 2048)))
    fails(capsys, ex.check_05_exercise_1(pool, shuffle, wrong),
          "real_params['pixel_shuffle']", hidden=(str(real["pixel_shuffle"]),))


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
    fails(capsys, ex.check_05_exercise_2(dict(counts, ldp=(9, 3)), disjoint),
          "ldp: output token 65 reads more", hidden=("25",))
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
