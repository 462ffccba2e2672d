"""Patch cutting and embedding (lesson 01)."""

import pytest
import torch

from mobilevlm_mini.patches import PatchEmbed, grid_shape, num_patches, patchify, sincos_2d, unpatchify


@pytest.mark.parametrize("size,patch,expected", [(224, 14, 256), (336, 14, 576), (64, 8, 64)])
def test_num_patches(size, patch, expected):
    assert num_patches(size, size, patch) == expected


def test_patchify_layout_and_roundtrip():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    patches = patchify(images, 2)
    assert patches.shape == (2, 6, 2 * 2 * 3)
    # second patch of the first row holds pixels (rows 0-1, cols 2-3), flattened as (p, q, c)
    expected = images[0, :, 0:2, 2:4].permute(1, 2, 0).flatten()
    assert torch.equal(patches[0, 1], expected)
    assert torch.equal(unpatchify(patches, 2, 4, 6), images)


def test_conv_equals_flatten_plus_linear():
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=4, in_channels=3, dim=16)
    images = torch.randn(2, 3, 16, 12)
    tokens = embed(images)
    assert tokens.shape == (2, 12, 16)
    torch.testing.assert_close(tokens, embed.as_linear()(patchify(images, 4)), rtol=1e-5, atol=1e-5)


def test_patchify_rejects_size_not_multiple_of_patch():
    with pytest.raises(ValueError, match=r"30x32 is not a multiple of the patch size 8"):
        patchify(torch.zeros(1, 3, 30, 32), 8)


def test_patchify_rejects_wrong_number_of_dimensions():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got 3 dimensions"):
        patchify(torch.zeros(3, 32, 32), 8)


def test_patch_embed_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expected 3 colour channels \(RGB\), got 4"):
        PatchEmbed(8, 3, 16)(torch.zeros(1, 4, 32, 32))


def test_sincos_2d_shape_and_distinct_positions():
    pos = sincos_2d(4, 4, 32)
    assert pos.shape == (16, 32)
    assert torch.cdist(pos, pos).fill_diagonal_(1.0).min() > 0.1


def test_grid_shape():
    assert grid_shape(576) == (24, 24)
    with pytest.raises(ValueError, match="10 tokens do not form a square grid"):
        grid_shape(10)


def test_sample_photo_loads_as_rgb_square():
    from mobilevlm_mini.photos import load_sample_photo

    photo = load_sample_photo(64)
    assert photo.shape == (3, 64, 64) and 0.0 <= photo.min() and photo.max() <= 1.0


def test_missing_image_file_is_named(tmp_path):
    from mobilevlm_mini.photos import load_image

    with pytest.raises(FileNotFoundError, match="no image file at .*nope.png"):
        load_image(tmp_path / "nope.png", 64)
