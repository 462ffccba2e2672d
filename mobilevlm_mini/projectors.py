"""Projectors: turn the vision encoder's patch tokens into tokens the language model reads (lesson 05).

Every projector maps (B, N, D_vision) tokens, laid out row by row on an h x w grid, to
(B, N_out, D_llm). They differ in how many tokens they keep and in what each output token sees:

    mlp            Linear -> GELU -> Linear on each token (LLaVA-1.5)                N_out = N
    ldp            the MLP, then two MobileNetV3 blocks, the second with stride 2    N_out = N / 4
                   (MobileVLM; github.com/Meituan-AutoML/MobileVLM)
    pool           the MLP, then s x s average pooling                              N_out = N / s^2
    ldpv2          `pool` with s = 2, then a depthwise 3x3 conv added back (PEG)      N_out = N / 4
                   (MobileVLM V2)
    pixel_shuffle  fold each s x s block of tokens into channels, then one Linear    N_out = N / s^2
                   (nanoVLM, Idefics3)
    resampler      learned queries cross-attend to all tokens (Perceiver, Q-Former,  N_out = num_queries
                   Qwen-VL)

`QFormer` (BLIP-2's Q-Former: learned queries through a BERT-sized stack of self-attention, cross-attention to
the image and feed-forward layers) is built the same way but kept out of PROJECTORS: at its real size it is far
too heavy to train here, and lesson 05 only counts its parameters and FLOPs.

Build one by name with `build_projector(name, vision_dim, llm_dim, **options)`; a new projector is a `Projector`
subclass with a `name`, `num_tokens_out` and `forward`, added to PROJECTORS. Their cost and what each output
token reads are measured in `analysis.py`.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mobilevlm_mini.attention import MLP, MultiHeadAttention
from mobilevlm_mini.patches import grid_shape, sincos_2d


def token_grid(num_tokens: int, factor: int = 1, name: str = "this projector") -> tuple[int, int]:
    """(h, w) of a square token grid whose side `factor` divides, with a clear error otherwise."""
    h, w = grid_shape(num_tokens)
    if h % factor:
        sides = sorted({h // factor * factor or factor, (h // factor + 1) * factor})
        raise ValueError(
            f"{name} needs a grid side divisible by {factor}, got {num_tokens} tokens = a {h}x{w} grid; "
            f"expected a side such as {' or '.join(map(str, sides))}"
        )
    return h, w


def to_grid(x: torch.Tensor, h: int) -> torch.Tensor:
    """(B, N, C) tokens in row-major order -> (B, C, h, w) feature map."""
    return rearrange(x, "b (h w) c -> b c h w", h=h)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) feature map -> (B, h*w, C) tokens in row-major order."""
    return rearrange(x, "b c h w -> b (h w) c")


class Projector(nn.Module):
    """What every projector shares: a registry name, its two widths, a check that the input is (B, N, vision_dim)."""

    name = "projector"

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        if vision_dim <= 0 or llm_dim <= 0:
            raise ValueError(f"widths must be positive, got vision_dim={vision_dim}, llm_dim={llm_dim}")
        self.vision_dim, self.llm_dim = vision_dim, llm_dim

    def check(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless x is a batch of tokens (B, N, vision_dim)."""
        if x.ndim != 3 or x.shape[-1] != self.vision_dim:
            raise ValueError(f"expected tokens shaped (B, N, {self.vision_dim}), got {tuple(x.shape)}")

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        raise NotImplementedError


class MLPProjector(Projector):
    """Linear -> GELU -> Linear on each token (LLaVA-1.5's `mlp2x_gelu`): N_out = N, any N."""

    name = "mlp"

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__(vision_dim, llm_dim)
        self.fc1 = nn.Linear(vision_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        return num_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self.fc2(F.gelu(self.fc1(x)))  # (B, N, D_llm)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map, each grid position on its own (timm's LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(super().forward(rearrange(x, "b c h w -> b h w c")), "b h w c -> b c h w")


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: average the whole map, squeeze to ~C/4, re-weight every channel by a gate in [0, 1]."""

    def __init__(self, channels: int):
        super().__init__()
        squeezed = max(8, (channels // 4 + 4) // 8 * 8)  # a quarter, to a multiple of 8, as in MobileNetV3
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1): one summary of the whole grid
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(scale))))
        return x * scale  # (B, C, H, W)


class InvertedResidual(nn.Module):
    """MobileNetV3 block without expansion: depthwise 3x3 -> LN -> Hardswish -> SE -> pointwise 1x1 -> LN
    (+ x if stride 1)."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)
        self.norm1 = ChannelLayerNorm(channels)
        self.se = SqueezeExcite(channels)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm2 = ChannelLayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.hardswish(self.norm1(self.depthwise(x)))  # (B, C, H/s, W/s): each position mixes its 3x3 window
        y = self.norm2(self.pointwise(self.se(y)))  # mixes channels, position by position
        return x + y if self.stride == 1 else y  # a residual only where the shapes match


class LDP(Projector):
    """MobileVLM's lightweight downsample projector: MLP, then inverted-residual blocks of stride 1 and 2:
    N_out = N / 4."""

    name = "ldp"

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__(vision_dim, llm_dim)
        self.mlp = MLPProjector(vision_dim, llm_dim)
        self.block1 = InvertedResidual(llm_dim, stride=1)
        self.block2 = InvertedResidual(llm_dim, stride=2)

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        h, w = token_grid(num_tokens, 2, self.name)
        return (h // 2) * (w // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        h, _ = token_grid(x.shape[1], 2, self.name)
        x = to_grid(self.mlp(x), h)  # (B, D_llm, h, w)
        x = self.block2(self.block1(x))  # (B, D_llm, h/2, w/2)
        return to_tokens(x)  # (B, N/4, D_llm)


class PoolProjector(Projector):
    """MLP, then s x s average pooling of the token grid: N_out = N / s^2 (LDPv2 without its PEG)."""

    name = "pool"

    def __init__(self, vision_dim: int, llm_dim: int, factor: int = 2):
        super().__init__(vision_dim, llm_dim)
        self.factor = factor
        self.mlp = MLPProjector(vision_dim, llm_dim)

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        token_grid(num_tokens, self.factor, self.name)
        return num_tokens // self.factor**2

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """MLP each token, then average each disjoint s x s block: (B, N, D_vision) -> (B, D_llm, h/s, w/s)."""
        self.check(x)
        h, _ = token_grid(x.shape[1], self.factor, self.name)
        return F.avg_pool2d(to_grid(self.mlp(x), h), self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_tokens(self.downsample(x))  # (B, N/s^2, D_llm)


class LDPv2(PoolProjector):
    """MobileVLM V2's projector: MLP, 2x2 average pooling, then a depthwise 3x3 conv added back (PEG): N_out = N / 4."""

    name = "ldpv2"

    def __init__(self, vision_dim: int, llm_dim: int, factor: int = 2):
        super().__init__(vision_dim, llm_dim, factor)
        # positional-encoding generator: each token learns where it sits from its 3x3 neighbourhood
        self.peg = nn.Conv2d(llm_dim, llm_dim, 3, padding=1, groups=llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)  # (B, D_llm, h/2, w/2)
        return to_tokens(x + self.peg(x))  # (B, N/4, D_llm)


class PixelShuffle(Projector):
    """Fold each s x s block of tokens into one token of s^2 times the width, then one Linear: N_out = N / s^2."""

    name = "pixel_shuffle"

    def __init__(self, vision_dim: int, llm_dim: int, factor: int = 2):
        super().__init__(vision_dim, llm_dim)
        self.factor = factor
        self.proj = nn.Linear(vision_dim * factor**2, llm_dim, bias=False)

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        token_grid(num_tokens, self.factor, self.name)
        return num_tokens // self.factor**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        h, _ = token_grid(x.shape[1], self.factor, self.name)
        s = self.factor
        x = rearrange(x, "b (h p w q) d -> b (h w) (p q d)", h=h // s, p=s, q=s)  # (B, N/s^2, s^2 D_vision)
        return self.proj(x)  # (B, N/s^2, D_llm)


class Resampler(Projector):
    """Learned queries cross-attend to every token, then an MLP (one Perceiver-resampler layer): N_out = num_queries.

    Each query may read any token. With `positions=True` (as in Qwen-VL's resampler) fixed 2-D sin-cos
    positions are added to the tokens it reads, so a query can ask for a place; that needs a square
    grid. With `positions=False` any number of tokens works.
    """

    name = "resampler"

    def __init__(
        self, vision_dim: int, llm_dim: int, num_queries: int = 16, num_heads: int = 4, mlp_ratio: float = 4.0,
        positions: bool = True
    ):
        super().__init__(vision_dim, llm_dim)
        if num_queries <= 0:
            raise ValueError(f"num_queries must be a positive number of output tokens, got {num_queries}")
        self.positions = positions
        self.queries = nn.Parameter(torch.randn(num_queries, llm_dim) * llm_dim**-0.5)
        self.norm_context = nn.LayerNorm(vision_dim)
        self.norm_queries = nn.LayerNorm(llm_dim)
        self.cross = MultiHeadAttention(llm_dim, num_heads, context_dim=vision_dim)
        self.norm_mlp = nn.LayerNorm(llm_dim)
        self.mlp = MLP(llm_dim, int(llm_dim * mlp_ratio))

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        return self.queries.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        context = self.norm_context(x)  # (B, N, D_vision)
        if self.positions:
            h, w = grid_shape(x.shape[1])
            context = context + sincos_2d(h, w, self.vision_dim).to(x)  # where each token sits on the grid
        q = self.queries.expand(x.shape[0], -1, -1)  # (B, Q, D_llm), the same queries for every image
        q = q + self.cross(self.norm_queries(q), context=context)  # each query reads all N tokens
        return q + self.mlp(self.norm_mlp(q))  # (B, Q, D_llm)


class QFormerLayer(nn.Module):
    """One Q-Former layer on the queries: self-attention among them, cross-attention to the image (only if
    `cross`), then a feed-forward; pre-norm like the course's other blocks (BERT normalises after each part,
    which changes no parameter or FLOP count)."""

    def __init__(self, dim: int, num_heads: int, context_dim: int, cross: bool, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.cross = MultiHeadAttention(dim, num_heads, context_dim=context_dim) if cross else None
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, q: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        q = q + self.attn(self.norm_self(q))  # (B, Q, dim): the queries read each other
        if self.cross is not None:
            q = q + self.cross(self.norm_cross(q), context=image)  # and, in every other layer, the image
        return q + self.mlp(self.norm_mlp(q))


class QFormer(Projector):
    """BLIP-2's Q-Former, the part the image goes through: N_out = num_queries, any N.

    `num_queries` learned queries of width `dim` pass `depth` layers (`QFormerLayer`); every `cross_every`-th
    layer, starting with the first, also cross-attends to the (normalised) image tokens. A Linear then maps
    each query to the LLM's width. The defaults are BLIP-2's: 32 queries through BERT-base's 12 layers of width
    768 with 12 heads, cross-attention in every other layer. BLIP-2 starts the stack from BERT's weights and, in
    pretraining, also runs text through the same self-attention; neither is modelled here. Not in PROJECTORS
    (see the module docstring): build it directly and measure it with `analysis.cost_of`.
    """

    name = "qformer"

    def __init__(
        self, vision_dim: int, llm_dim: int, num_queries: int = 32, dim: int = 768, depth: int = 12,
        num_heads: int = 12, cross_every: int = 2, mlp_ratio: float = 4.0
    ):
        super().__init__(vision_dim, llm_dim)
        if num_queries <= 0 or depth <= 0 or cross_every <= 0:
            raise ValueError(f"num_queries, depth and cross_every must be positive, got {num_queries}, {depth}, "
                             f"{cross_every}")
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * dim**-0.5)
        self.norm_context = nn.LayerNorm(vision_dim)
        self.layers = nn.ModuleList(
            QFormerLayer(dim, num_heads, vision_dim, cross=i % cross_every == 0, mlp_ratio=mlp_ratio)
            for i in range(depth)
        )
        self.norm_out = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, llm_dim)

    def num_tokens_out(self, num_tokens: int) -> int:
        """How many tokens the projector returns for `num_tokens` inputs."""
        return self.queries.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        image = self.norm_context(x)  # (B, N, D_vision)
        q = self.queries.expand(x.shape[0], -1, -1)  # (B, Q, dim), the same queries for every image
        for layer in self.layers:
            q = layer(q, image)
        return self.proj(self.norm_out(q))  # (B, Q, D_llm)


PROJECTORS: dict[str, type[Projector]] = {
    cls.name: cls for cls in (MLPProjector, LDP, PoolProjector, LDPv2, PixelShuffle, Resampler)
}


def check_projector(name: str, options: dict) -> None:
    """Raise a ValueError naming what is wrong unless `name` is a key of PROJECTORS and it accepts `options`."""
    if name not in PROJECTORS:
        raise ValueError(f"unknown projector {name!r}; expected one of {sorted(PROJECTORS)}")
    accepted = sorted(set(inspect.signature(PROJECTORS[name]).parameters) - {"vision_dim", "llm_dim"})
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"projector {name!r} has no option {unknown}; it accepts {accepted or 'no options'}")


def build_projector(name: str, vision_dim: int, llm_dim: int, **options) -> Projector:
    """The projector called `name` (a key of PROJECTORS), mapping width vision_dim to llm_dim."""
    check_projector(name, options)
    return PROJECTORS[name](vision_dim, llm_dim, **options)
