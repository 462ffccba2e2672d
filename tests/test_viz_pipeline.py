"""Plot helpers of lessons 00-01: the pipeline diagram, patch grids and position-similarity maps."""

import matplotlib.pyplot as plt
import pytest
import torch

from mobilevlm_mini import viz
from mobilevlm_mini.patches import sincos_2d


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(ax: plt.Axes) -> str:
    return "\n".join(t.get_text() for t in ax.texts) + "\n" + ax.get_title()


def test_pipeline_shows_mobilevlm_token_counts():
    words = texts(viz.draw_pipeline())
    assert "576 tokens\n× 1024" in words  # 336/14 = 24, 24^2 = 576 tokens from CLIP ViT-L/14
    assert "144 tokens\n× 2048" in words  # LDP keeps 1 in 4, widened to MobileLLaMA 1.4B's 2048
    assert "576 patches\n× 588 values" in words  # 14 * 14 * 3 numbers per patch
    assert "MobileLLaMA 1.4B" in words and "4× fewer tokens" in words
    assert "576 tokens\n× 4096" in texts(viz.draw_pipeline(llm_dim=4096, reduction=1))  # LLaVA-1.5: no reduction


def test_pipeline_with_course_sizes_and_image():
    ax = viz.draw_pipeline(64, 8, 64, 96, reduction=4, llm="tiny LM", image=torch.rand(3, 64, 64))
    words = texts(ax)
    assert "64 tokens\n× 64" in words and "16 tokens\n× 96" in words
    assert len(ax.child_axes) == 1  # the thumbnail of the image


@pytest.mark.parametrize("kwargs,message", [
    (dict(image_size=100, patch_size=14), "100x100 is not a multiple of the patch size 14"),
    (dict(image_size=336, patch_size=14, reduction=5), "positive divisor of the 576 visual tokens, got 5"),
])
def test_pipeline_rejects_impossible_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        viz.draw_pipeline(**kwargs)


def test_patch_grid_draws_lines_and_indices():
    ax = viz.show_patch_grid(torch.rand(3, 32, 48), 8, plt.gca(), indices=True)
    assert len(ax.lines) == (6 - 1) + (4 - 1)  # inner grid lines of a 4 x 6 grid
    assert [t.get_text() for t in ax.texts] == [str(n) for n in range(24)]
    assert "24 tokens" in ax.get_title()
    with pytest.raises(ValueError, match="not a multiple of the patch size 7"):
        viz.show_patch_grid(torch.rand(3, 32, 32), 7)


def test_patch_sequence_places_patches_in_token_order():
    image = torch.zeros(3, 16, 16)
    image[:, 8:, :8] = 1.0  # only the third patch (row 1, col 0) is white
    ax = viz.show_patch_sequence(image, 8, plt.gca(), per_row=2)
    canvas = ax.images[0].get_array()  # (rows * step, per_row * step, 3) with step = 8 + 2 gap pixels
    assert canvas.shape == (20, 20, 3)
    assert canvas[10:18, 0:8].min() == 1.0 and canvas[0:8, 0:8].max() == 0.0 and canvas[10:18, 10:18].max() == 0.0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0–1", "2–3"]


def test_position_similarity_peaks_at_the_chosen_position():
    axes = viz.show_position_similarity(sincos_2d(6, 6, 32), 6, 6, [(0, 0), (2, 3)], label="sin-cos")
    for ax, (r, c) in zip(axes, [(0, 0), (2, 3)], strict=True):
        sim = torch.as_tensor(ax.images[0].get_array())
        assert sim.shape == (6, 6) and sim[r, c] == pytest.approx(1.0)
        assert sim.flatten().argmax().item() == r * 6 + c
    with pytest.raises(ValueError, match=r"outside the 6x6 grid"):
        viz.show_position_similarity(sincos_2d(6, 6, 32), 6, 6, [(6, 0)])
    with pytest.raises(ValueError, match="expected 4x4 = 16 position embeddings, got 36"):
        viz.show_position_similarity(sincos_2d(6, 6, 32), 4, 4, [(0, 0)])
