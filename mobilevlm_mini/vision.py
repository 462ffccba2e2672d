"""The vision encoder: a tiny ViT (lesson 04).

image (B, 3, H, W) in [0, 1] -> standardised pixels -> [a convolutional stem, `ViTConfig.stem`] -> patch embedding
(patches.PatchEmbed) + position embedding ->
pre-norm transformer blocks (attention.Block) -> final LayerNorm -> patch tokens (B, N, D), N = H W / P^2.
There is no CLS token: the pooled vector is the mean of the patch tokens, so every token is a patch
and the token grid stays square for the projectors. Like MobileVLM, later lessons read the patch
tokens of the penultimate block (`vit(images, layer=-2)`) and keep the encoder frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mobilevlm_mini.attention import Block
from mobilevlm_mini.patches import PatchEmbed, check_images, num_patches, sincos_2d


@dataclass
class ViTConfig:
    """Sizes of the ViT. The defaults see a 48 x 48 image as a 6 x 6 grid of 36 tokens."""

    image_size: int = 48
    patch_size: int = 8
    channels: int = 3
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    # pixels are standardised per channel, as CLIP does; these are the shapes world's statistics
    pixel_mean: tuple[float, ...] = (0.888, 0.877, 0.871)
    pixel_std: tuple[float, ...] = (0.120, 0.131, 0.160)
    # 0: patches cut straight from the pixels (the course's default); > 0: a convolutional stem of this many channels
    # first (`conv_stem`), so a token's features change little when an object moves a few pixels
    stem: int = 0

    def __post_init__(self):
        num_patches(self.image_size, self.image_size, self.patch_size)  # raises if P does not divide the image
        if not len(self.pixel_mean) == len(self.pixel_std) == self.channels:
            raise ValueError(f"pixel_mean and pixel_std need one value per channel ({self.channels}), "
                             f"got {self.pixel_mean} and {self.pixel_std}")
        if self.stem < 0 or (self.stem and self.patch_size % 2):
            raise ValueError(f"stem must be 0 (no stem) or a number of channels with an even patch_size, "
                             f"got stem={self.stem}, patch_size={self.patch_size}")
        if self.dim % self.heads or self.dim % 4:
            raise ValueError(f"dim must be divisible by heads ({self.heads}) and by 4 (2-D position embedding), "
                             f"got {self.dim}")

    @property
    def grid(self) -> int:
        """Tokens per side of the patch grid."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """N, the number of patch tokens."""
        return self.grid**2


def conv_stem(in_channels: int, channels: int) -> nn.Module:
    """Two 3 x 3 convolutions with GELU, the first with stride 2: (B, C, H, W) -> (B, channels, H/2, W/2); nothing
    when channels is 0. Overlapping windows, unlike patches: a shape a few pixels off still lights the same filters."""
    if not channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.GELU(),
                         nn.Conv2d(channels, channels, 3, padding=1), nn.GELU())


class ViT(nn.Module):
    """Vision transformer returning patch tokens (B, N, D); `pool` turns them into one vector per image."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.stem = conv_stem(config.channels, config.stem)
        # after the stem's stride 2, a patch of P pixels is P / 2 stem positions wide: the same token grid
        self.patch_embed = PatchEmbed(config.patch_size // 2 if config.stem else config.patch_size,
                                      config.stem or config.channels, config.dim)
        # learned, but started from the fixed 2-D sin-cos table so the grid layout is known from step 0
        self.pos_embed = nn.Parameter(0.1 * sincos_2d(config.grid, config.grid, config.dim)[None])  # (1, N, D)
        self.blocks = nn.ModuleList(Block(config.dim, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Patch tokens (B, N, D): after the final norm (layer=None), or the raw output of block `layer`
        (-2: penultimate)."""
        check_images(images, self.config.channels, self.config.image_size, floating=True)
        images = (images - self.pixel_mean) / self.pixel_std  # mean 0, std 1 per channel: faster training
        x = self.patch_embed(self.stem(images)) + self.pos_embed  # (B, N, D)
        if layer is None:
            for block in self.blocks:
                x = block(x)
            return self.norm(x)
        stop = range(len(self.blocks))[layer]  # IndexError for a block that does not exist
        for block in self.blocks[: stop + 1]:
            x = block(x)
        return x

    @staticmethod
    def pool(tokens: torch.Tensor) -> torch.Tensor:
        """One vector per image: the mean of its patch tokens, (B, N, D) -> (B, D)."""
        return tokens.mean(dim=1)
