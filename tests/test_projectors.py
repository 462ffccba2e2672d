"""Projectors and token reduction (lesson 05)."""

import pytest
import torch

from mobilevlm_mini.projectors import PROJECTORS, QFormer, build_projector

# (name, options, tokens out for an h x h grid)
CASES = [
    ("mlp", {}, lambda h: h * h),
    ("ldp", {}, lambda h: (h // 2) ** 2),
    ("pool", {}, lambda h: (h // 2) ** 2),
    ("pool", {"factor": 3}, lambda h: (h // 3) ** 2),
    ("ldpv2", {}, lambda h: (h // 2) ** 2),
    ("pixel_shuffle", {}, lambda h: (h // 2) ** 2),
    ("pixel_shuffle", {"factor": 3}, lambda h: (h // 3) ** 2),
    ("resampler", {"num_queries": 5}, lambda h: 5),
]


@pytest.mark.parametrize("name,options,expected", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
@pytest.mark.parametrize("side", [6, 12, 24])
def test_output_shapes(name, options, expected, side):
    torch.manual_seed(0)
    projector = build_projector(name, 24, 16, **options)
    x = torch.randn(2, side * side, 24)
    out = projector(x)
    assert out.shape == (2, expected(side), 16)
    assert projector.num_tokens_out(side * side) == expected(side)
    assert torch.isfinite(out).all()


def test_registry_lists_every_projector_and_rejects_unknown_names():
    assert set(PROJECTORS) == {"mlp", "ldp", "pool", "ldpv2", "pixel_shuffle", "resampler"}
    with pytest.raises(ValueError, match=r"unknown projector 'ldp3'; expected one of \['ldp', "):
        build_projector("ldp3", 8, 8)
    with pytest.raises(ValueError, match="vision_dim=0"):
        build_projector("mlp", 0, 8)
    with pytest.raises(ValueError, match=r"projector 'ldp' has no option \['factor'\]; it accepts no options"):
        build_projector("ldp", 8, 8, factor=3)
    with pytest.raises(ValueError, match=r"has no option \['scale'\]; it accepts \['factor'\]"):
        build_projector("pixel_shuffle", 8, 8, scale=3)


@pytest.mark.parametrize("name", ["ldp", "pool", "ldpv2", "pixel_shuffle"])
def test_non_square_token_count_is_rejected(name):
    with pytest.raises(ValueError, match="50 tokens do not form a square grid"):
        build_projector(name, 8, 8)(torch.zeros(1, 50, 8))


@pytest.mark.parametrize("name", list(PROJECTORS))
def test_wrong_token_width_is_rejected(name):
    with pytest.raises(ValueError, match=r"expected tokens shaped \(B, N, 8\), got \(1, 16, 6\)"):
        build_projector(name, 8, 8)(torch.zeros(1, 16, 6))


def test_token_wise_projectors_need_no_grid():
    x = torch.zeros(1, 50, 8)
    assert build_projector("mlp", 8, 4)(x).shape == (1, 50, 4)
    assert build_projector("resampler", 8, 8, num_queries=3, num_heads=2, positions=False)(x).shape == (1, 3, 8)
    with pytest.raises(ValueError, match="50 tokens do not form a square grid"):
        build_projector("resampler", 8, 8, num_queries=3, num_heads=2)(x)  # positions need a grid


def test_resampler_positions_tell_the_queries_where_tokens_sit():
    torch.manual_seed(0)
    resampler = build_projector("resampler", 8, 8, num_queries=3, num_heads=2)
    x = torch.randn(1, 16, 8).expand(2, -1, -1).clone()
    x[1] = x[1].flip(0)  # the same tokens in another order
    out = resampler(x)
    assert not torch.allclose(out[0], out[1], atol=1e-4)  # with positions, order matters
    resampler.positions = False
    out = resampler(x)
    torch.testing.assert_close(out[0], out[1])  # without, the queries see a set of tokens


@pytest.mark.parametrize("name,options,factor", [("ldp", {}, 2), ("ldpv2", {}, 2), ("pool", {"factor": 3}, 3),
                                                 ("pixel_shuffle", {"factor": 2}, 2)])
def test_grid_side_not_divisible_is_rejected(name, options, factor):
    with pytest.raises(ValueError, match=rf"{name} needs a grid side divisible by {factor}, "
                                         rf"got 49 tokens = a 7x7 grid"):
        build_projector(name, 8, 8, **options)(torch.zeros(1, 49, 8))


def test_resampler_rejects_zero_queries():
    with pytest.raises(ValueError, match="num_queries must be a positive number of output tokens, got 0"):
        build_projector("resampler", 8, 8, num_queries=0)


def test_ldp_blocks_follow_mobilenetv3():
    ldp = build_projector("ldp", 1024, 2048)
    block = ldp.block1
    assert block.depthwise.groups == 2048 and block.depthwise.kernel_size == (3, 3)
    assert (ldp.block1.depthwise.stride, ldp.block2.depthwise.stride) == ((1, 1), (2, 2))
    assert block.se.fc1.out_channels == 512  # squeeze to a quarter of the channels


def test_show_token_regions_draws_one_colour_per_map():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mobilevlm_mini.viz import show_token_regions

    maps = [torch.zeros(16), torch.zeros(16)]
    maps[0][5], maps[1][6] = 1.0, 2.0
    fig, ax = plt.subplots()
    show_token_regions(torch.rand(3, 32, 32), maps, ax, title="t", labels=["a", "b"])
    overlay = ax.get_images()[-1].get_array()  # (4, 4, RGBA) on the token grid
    assert overlay.shape == (4, 4, 4) and overlay[1, 1, 0] == 1.0 and overlay[1, 2, 2] == 1.0 and overlay[0, 0, 3] == 0
    maps[1][7] = 0.005  # below 1% of the maximum: not drawn
    show_token_regions(torch.rand(3, 32, 32), maps, ax)
    assert ax.get_images()[-1].get_array()[1, 3, 3] == 0
    with pytest.raises(ValueError, match="got 1 labels for 2 maps"):
        show_token_regions(torch.rand(3, 32, 32), maps, ax, labels=["a"])
    plt.close(fig)


def test_q_former_returns_its_queries_whatever_the_image_and_stays_out_of_the_registry():
    torch.manual_seed(0)
    qformer = QFormer(8, 6, num_queries=3, dim=8, depth=3, num_heads=2)
    assert [layer.cross is not None for layer in qformer.layers] == [True, False, True]  # every other layer
    for n in (16, 50):
        out = qformer(torch.randn(2, n, 8))
        assert out.shape == (2, 3, 6) and torch.isfinite(out).all()
    assert qformer.num_tokens_out(50) == 3 and "qformer" not in PROJECTORS
    with pytest.raises(ValueError, match=r"expected tokens shaped \(B, N, 8\), got \(1, 16, 6\)"):
        qformer(torch.zeros(1, 16, 6))
