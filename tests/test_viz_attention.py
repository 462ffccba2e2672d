"""The attention plot helpers in viz.py draw what they are given and reject what they cannot draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mobilevlm_mini.viz import show_attention, show_patch_heatmap  # noqa: E402


def test_show_attention_draws_the_matrix_with_labels():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    fig, ax = plt.subplots()
    show_attention(weights, ax, query_labels=["a", "b", "c"], key_labels=list("wxyz"), title="t")
    image = ax.get_images()[0]
    assert image.get_array().shape == (3, 4)
    torch.testing.assert_close(torch.as_tensor(image.get_array().data), weights)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "t" and ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)


def test_show_attention_rejects_bad_shapes_and_labels():
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        show_attention(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="query_labels has 2 labels but the matrix has 3"):
        show_attention(torch.rand(3, 4), query_labels=["a", "b"])
    plt.close("all")


def test_show_patch_heatmap_overlays_a_grid_and_marks_the_query():
    image, values = torch.rand(3, 32, 32), torch.arange(16.0)
    fig, ax = plt.subplots()
    show_patch_heatmap(image, values, ax, title="map", mark=5)
    photo, heat = ax.get_images()
    assert heat.get_array().shape == (4, 4) and heat.get_extent() == [0, 32, 32, 0]
    (box,) = ax.patches
    assert box.get_xy() == (8.0, 8.0) and box.get_width() == 8.0  # patch 5 = row 1, column 1
    plt.close(fig)


def test_show_patch_heatmap_rejects_bad_input():
    with pytest.raises(ValueError, match="do not form a square grid"):
        show_patch_heatmap(torch.rand(3, 32, 32), torch.rand(15))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        show_patch_heatmap(torch.rand(1, 3, 32, 32), torch.rand(16))
    with pytest.raises(ValueError, match=r"mark must be a patch index in \[0, 16\), got 16"):
        show_patch_heatmap(torch.rand(3, 32, 32), torch.rand(16), mark=16)
    plt.close("all")
