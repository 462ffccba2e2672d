"""Attention: the by-hand formula, masks, multi-head self- and cross-attention, transformer blocks.

Lessons 02 and 03 build these inline first; the ViT (vision.py) and the Flamingo-style example
reuse them from here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v by hand; returns (output, attention weights).

    q: (..., Nq, d), k and v: (..., Nk, d); mask: bool (Nq, Nk) or broadcastable, True = may attend.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries have width {q.shape[-1]} but keys have width {k.shape[-1]}; they must match")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"got {k.shape[-2]} keys but {v.shape[-2]} values; each key needs exactly one value")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # each row sums to 1
    return weights @ v, weights  # (..., Nq, d), (..., Nq, Nk)


def causal_mask(n_queries: int, n_keys: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool (Nq, Nk) mask, True where query i may see key j: j <= i, with queries being the last Nq positions."""
    n_keys = n_queries if n_keys is None else n_keys
    if n_keys < n_queries:
        raise ValueError(f"a causal mask needs at least as many keys as queries, "
                         f"got {n_keys} keys for {n_queries} queries")
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(diagonal=n_keys - n_queries)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: self-attention when `context` is None, cross-attention otherwise.

    x: (B, N, dim) gives the queries; context: (B, M, context_dim) gives keys and values.
    """

    def __init__(self, dim: int, num_heads: int, causal: bool = False, context_dim: int | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.causal = causal
        context_dim = dim if context_dim is None else context_dim
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        context = x if context is None else context
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)  # (B, H, N, d)
        k, v = rearrange(self.kv(context), "b m (two h d) -> two b h m d", two=2, h=self.num_heads)
        # one mask for both paths; it also lines up the last queries with the last keys when N < M
        mask = causal_mask(q.shape[-2], k.shape[-2], x.device) if self.causal else None  # (N, M)
        if return_weights:  # the by-hand path, so lessons can draw the attention maps
            out, weights = attention(q, k, v, mask)
        else:  # PyTorch's fused kernel: same numbers, less memory
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.out(rearrange(out, "b h n d -> b n (h d)"))  # (B, N, dim)
        return (out, weights) if return_weights else out


class MLP(nn.Module):
    """The transformer's feed-forward: Linear -> GELU -> Linear, applied to each token."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, causal: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, causal=causal)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, N, dim)
        return x + self.mlp(self.norm2(x))


class GatedCrossAttentionBlock(nn.Module):
    """Flamingo's gated cross-attention: text attends to image tokens through tanh gates that start at 0.

    With both gates at 0 the block is the identity, so inserting it leaves a pretrained LM unchanged.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.cross = MultiHeadAttention(dim, num_heads, context_dim=context_dim)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.mlp_gate = nn.Parameter(torch.zeros(1))

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = text + self.attn_gate.tanh() * self.cross(self.norm1(text), context=image)  # (B, Nt, dim)
        return x + self.mlp_gate.tanh() * self.mlp(self.norm2(x))
