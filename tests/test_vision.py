"""The tiny ViT: shapes, layers, and clear errors for images it cannot read."""

import pytest
import torch

from mobilevlm_mini.vision import ViT, ViTConfig


@pytest.fixture
def vit():
    torch.manual_seed(0)
    return ViT(ViTConfig(image_size=32, patch_size=8, dim=32, depth=3, heads=4)).eval()


def test_tokens_and_pooled_shapes(vit):
    images = torch.rand(2, 3, 32, 32)
    tokens = vit(images)
    assert tokens.shape == (2, 16, 32) and vit.config.num_tokens == 16 and vit.config.grid == 4
    assert ViT.pool(tokens).shape == (2, 32)
    torch.testing.assert_close(ViT.pool(tokens), tokens.mean(dim=1))


def test_layers_are_block_outputs(vit):
    images = torch.rand(2, 3, 32, 32)
    mean, std = (torch.tensor(vit.config.pixel_mean).view(1, 3, 1, 1),
                 torch.tensor(vit.config.pixel_std).view(1, 3, 1, 1))
    x = vit.patch_embed((images - mean) / std) + vit.pos_embed
    outputs = []
    for block in vit.blocks:
        x = block(x)
        outputs.append(x)
    torch.testing.assert_close(vit(images, layer=-2), outputs[-2])  # penultimate, as MobileVLM reads it
    torch.testing.assert_close(vit(images, layer=0), outputs[0])
    torch.testing.assert_close(vit(images), vit.norm(outputs[-1]))
    with pytest.raises(IndexError):
        vit(images, layer=3)


def test_each_token_depends_on_the_whole_image(vit):
    images = torch.rand(1, 3, 32, 32)
    changed = images.clone()
    changed[..., :8, :8] = 0  # only the first patch
    difference = (vit(images) - vit(changed)).abs().sum(-1)[0]  # (N,)
    assert (difference > 0).all(), "attention mixes every patch into every token"


@pytest.mark.parametrize(
    "images,message",
    [
        (torch.rand(1, 3, 64, 64), r"expected 32x32 images, got 64x64"),
        (torch.rand(1, 4, 32, 32), r"expected 3 colour channels \(RGB\), got 4"),
        (torch.rand(1, 1, 32, 32), r"got 1; convert the image to RGB"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), r"expected float pixels in \[0, 1\], got dtype torch.uint8"),
        (torch.rand(3, 32, 32), r"with shape \(3, 32, 32\)"),
        ([[0.0]], r"got list"),
    ],
)
def test_bad_images(vit, images, message):
    with pytest.raises(ValueError, match=message):
        vit(images)


def test_bad_config():
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        ViTConfig(image_size=60, patch_size=8)
    with pytest.raises(ValueError, match="divisible by heads"):
        ViTConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match=r"one value per channel \(1\)"):
        ViTConfig(channels=1)
    with pytest.raises(ValueError, match="even patch_size"):
        ViTConfig(image_size=48, patch_size=3, stem=16)


def test_a_conv_stem_keeps_the_token_grid_and_no_stem_keeps_the_old_weights():
    """stem=0 is the plain ViT (its weights' names unchanged, so cached encoders load); a stem of C channels
    halves the picture with overlapping 3 x 3 windows and the patch embedding takes P/2 of its positions: the same
    36 tokens."""
    plain, stemmed = ViT(ViTConfig()), ViT(ViTConfig(stem=16))
    assert not any(name.startswith("stem") for name in plain.state_dict())
    assert stemmed.patch_embed.proj.kernel_size == (4, 4) and stemmed.patch_embed.proj.in_channels == 16
    images = torch.rand(2, 3, 48, 48)
    assert plain(images).shape == stemmed(images).shape == (2, 36, 64)
    # a token's receptive field now overlaps its neighbour's: a pixel of patch (0, 1) reaches token (0, 0)
    images = torch.rand(1, 3, 48, 48)
    moved = images.clone()
    moved[0, :, 0, 8] += 1.0  # the first pixel of patch (0, 1)
    first = lambda vit, x: vit.patch_embed(vit.stem((x - vit.pixel_mean) / vit.pixel_std))[0, 0]  # noqa: E731
    assert torch.equal(first(plain, images), first(plain, moved))  # patches do not overlap
    assert not torch.equal(first(stemmed, images), first(stemmed, moved))  # the stem's windows do
