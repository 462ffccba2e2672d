"""Patches: cut an image into P x P squares and embed each one as a token (lesson 01).

A ViT sees an image of H x W pixels as N_v = H W / P^2 tokens. Two equal ways to embed them:
flatten each patch and apply one Linear, or run a Conv2d whose kernel and stride are both P.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


def num_patches(height: int, width: int, patch_size: int) -> int:
    """N_v = H W / P^2, the number of visual tokens a ViT makes from an H x W image."""
    _check_divisible(height, width, patch_size)
    return (height // patch_size) * (width // patch_size)


def _check_divisible(height: int, width: int, patch_size: int) -> None:
    if patch_size <= 0:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size}")
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of the patch size {patch_size}: "
            f"expected height and width divisible by {patch_size} "
            f"(e.g. {height // patch_size * patch_size or patch_size}x"
            f"{width // patch_size * patch_size or patch_size})"
        )


def check_images(images: torch.Tensor, channels: int | None = None, size: int | None = None,
                 floating: bool = False) -> None:
    """Raise a ValueError unless `images` is a (B, C, H, W) tensor; with `channels`, `size` (S x S pixels) and
    `floating` (float pixels in [0, 1]) given, also of those. The one image check of the ViT and the patch embedding."""
    expected = f"(B, {channels or 'C'}, {f'{size}, {size}' if size else 'H, W'})"
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"expected a float tensor {expected}, got {type(images).__name__}; "
                         f"convert PIL images with data.images_to_tensor")
    if images.ndim != 4:
        raise ValueError(
            f"expected a batch of images shaped {expected}, got {images.ndim} dimensions "
            f"with shape {tuple(images.shape)}; add a batch dimension with images.unsqueeze(0)"
        )
    if floating and not images.is_floating_point():
        raise ValueError(f"expected float pixels in [0, 1], got dtype {images.dtype}; divide uint8 images by 255")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"expected {channels} colour channels (RGB), got {images.shape[1]}; "
                         f"convert the image to RGB first")
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        raise ValueError(f"expected {size}x{size} images, got {images.shape[-2]}x{images.shape[-1]}; "
                         f"resize them to {size}x{size}")


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut (B, C, H, W) images into flattened patches (B, N, P*P*C), row by row from the top left."""
    check_images(images)
    _check_divisible(images.shape[-2], images.shape[-1], patch_size)
    return rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, P*P*C) patches back to (B, C, H, W) images."""
    _check_divisible(height, width, patch_size)
    return rearrange(
        patches, "b (h w) (p q c) -> b c (h p) (w q)",
        h=height // patch_size, p=patch_size, q=patch_size,
    )


class PatchEmbed(nn.Module):
    """Patch embedding as a Conv2d with kernel = stride = P: (B, C, H, W) -> (B, N, D)."""

    def __init__(self, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, channels=self.in_channels)
        _check_divisible(images.shape[-2], images.shape[-1], self.patch_size)
        x = self.proj(images)  # (B, D, H/P, W/P)
        return rearrange(x, "b d h w -> b (h w) d")  # (B, N, D)

    def as_linear(self) -> nn.Linear:
        """The same weights as a Linear on `patchify` output (flatten order p, q, c)."""
        dim = self.proj.out_channels
        linear = nn.Linear(self.patch_size**2 * self.in_channels, dim)
        with torch.no_grad():
            linear.weight.copy_(rearrange(self.proj.weight, "d c p q -> d (p q c)"))
            linear.bias.copy_(self.proj.bias)
        return linear


def sincos_1d(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Sine-cosine embedding of positions (N,) -> (N, dim), as in "Attention is all you need"."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim, got {dim}")
    freqs = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = positions.float()[:, None] * freqs[None, :]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (N, dim)


def sincos_2d(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings (grid_h*grid_w, dim): half the channels for rows, half for columns."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    emb_rows = sincos_1d(rows.flatten(), dim // 2)  # (N, dim/2)
    emb_cols = sincos_1d(cols.flatten(), dim // 2)  # (N, dim/2)
    return torch.cat([emb_rows, emb_cols], dim=-1)  # (N, dim)


def grid_shape(num_tokens: int) -> tuple[int, int]:
    """The (h, w) side of a square token grid, with a clear error when N is not a square."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} tokens do not form a square grid; "
                         f"expected a square such as {side * side} or {(side + 1) ** 2}")
    return side, side
