"""The gallery, bar-count and 2-D scatter helpers in viz.py (lesson 04) draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from mobilevlm_mini.viz import show_counts, show_gallery, show_scatter_2d  # noqa: E402


def test_show_gallery_draws_each_image_with_its_text():
    images = [torch.rand(3, 8, 8), np.zeros((8, 8, 3), dtype=np.uint8), Image.new("RGB", (8, 8), "red"),
              torch.rand(3, 8, 8), torch.rand(3, 8, 8)]
    texts = [f"q{i}?\na{i}" for i in range(5)]
    fig = show_gallery(images, texts, ncols=3, title="five images")
    axes = fig.get_axes()
    assert len(axes) == 6, "two rows of three: five images and one empty cell"
    assert [ax.get_title(loc="left") for ax in axes[:5]] == texts
    assert [len(ax.get_images()) for ax in axes] == [1, 1, 1, 1, 1, 0]
    assert not axes[5].axison, "the unused cell is hidden"
    np.testing.assert_allclose(axes[2].get_images()[0].get_array()[0, 0], [255, 0, 0])
    assert fig._suptitle.get_text() == "five images"
    plt.close(fig)


def test_show_gallery_needs_one_text_per_image():
    with pytest.raises(ValueError, match="got 2 images but 1 texts"):
        show_gallery([torch.rand(3, 4, 4)] * 2, ["only one"])


def test_show_counts_labels_every_bar():
    fig, ax = plt.subplots()
    show_counts({"colour": 5, "shape": 3}, ax, title="counts", xlabel="type")
    assert [round(bar.get_height()) for bar in ax.patches] == [5, 3]
    assert [text.get_text() for text in ax.texts] == ["5", "3"]
    assert ax.get_title() == "counts" and ax.get_xlabel() == "type" and ax.get_ylabel() == "count"
    plt.close(fig)


def test_show_scatter_2d_one_legend_entry_per_label():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    fig, ax = plt.subplots()
    show_scatter_2d(points, ["b", "a", "b"], ax, title="t", palette={"a": "red", "b": "blue"})
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["b", "a"]
    assert [len(c.get_offsets()) for c in ax.collections] == [2, 1]
    with pytest.raises(ValueError, match="got 3 points but 2 labels"):
        show_scatter_2d(points, ["a", "b"], ax)
    plt.close(fig)
