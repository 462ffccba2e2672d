"""The tiny MobileLLaMA: RMSNorm, rotary positions, SwiGLU, grouped-query attention, KV cache (lesson 06).

MobileLLaMA is the LLaMA architecture at 1.4B and 2.7B parameters. The config uses Hugging Face
`LlamaConfig` field names and every parameter has the name it has in `LlamaForCausalLM`
(`model.layers.0.self_attn.q_proj.weight`, ...), so lesson 12 can move weights across one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from mobilevlm_mini.attention import attention, causal_mask


@dataclass(frozen=True)
class MobileLlamaConfig:
    """LLaMA hyper-parameters, named as in Hugging Face `LlamaConfig`; defaults are MobileLLaMA-1.4B."""

    vocab_size: int = 32000
    hidden_size: int = 2048
    intermediate_size: int = 5632
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int = 16
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads {self.num_key_value_heads} must divide num_attention_heads "
                f"{self.num_attention_heads} (each key/value head serves a group of query heads)"
            )
        if self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head: hidden_size / num_attention_heads."""
        return self.hidden_size // self.num_attention_heads


PRESETS = {
    "mobilellama-1.4b": MobileLlamaConfig(),
    "mobilellama-2.7b": MobileLlamaConfig(
        hidden_size=2560, intermediate_size=6912, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32
    ),
    # the course's model: same architecture, ~16,000x fewer parameters; set vocab_size from the tokenizer
    "tiny": MobileLlamaConfig(
        vocab_size=128, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    ),
}


def preset(name: str, **overrides) -> MobileLlamaConfig:
    """A named config ("mobilellama-1.4b", "mobilellama-2.7b", "tiny"), with fields overridden by keyword."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def layer_linear_weights(config: MobileLlamaConfig) -> int:
    """Weights of one decoder layer's Linear layers (the matrices a token is multiplied by), from the shapes alone."""
    d, kv = config.hidden_size, config.num_key_value_heads * config.head_dim
    attn = 2 * d * d + 2 * d * kv  # q_proj, o_proj: d x d; k_proj, v_proj: d x kv
    mlp = 3 * d * config.intermediate_size  # gate_proj, up_proj, down_proj
    return attn + mlp


def count_parameters(config: MobileLlamaConfig) -> int:
    """Parameters of the causal LM built from `config`, counted from the shapes alone (no weights allocated)."""
    d = config.hidden_size
    layer = layer_linear_weights(config) + 2 * d  # + input_layernorm, post_attention_layernorm
    embeddings = config.vocab_size * d * (1 if config.tie_word_embeddings else 2)  # embed_tokens (+ lm_head)
    return embeddings + config.num_hidden_layers * layer + d  # + the final norm


def kv_cache_bytes(config: MobileLlamaConfig, seq_len: int, batch_size: int = 1, bytes_per_value: int = 2) -> int:
    """Memory of the KV cache: keys and values for every layer, key/value head and position (fp16 by default)."""
    return (2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * seq_len * batch_size
            * bytes_per_value)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without the mean subtraction and without a bias."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()  # normalise in float32 even when the model runs in half precision
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, each (..., N, head_dim), for integer positions (..., N).

    Pair i of a head (channels i and i + head_dim/2) turns by angle position * theta^(-2i/head_dim).
    """
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)  # (d/2,)
    angles = positions.float()[..., None] * inv_freq  # (..., N, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., N, d): both halves of a pair share an angle
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension: a 90-degree turn of each pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair of x (..., N, head_dim) by its angle: x cos + rotate_half(x) sin."""
    return x * cos + rotate_half(x) * sin


class SwiGLU(nn.Module):
    """LLaMA's feed-forward: down(silu(gate(x)) * up(x)); the gate decides, per channel, what passes."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def take_rows(x: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """x (B or 1, ..., N, ...) with dimension `dim` of length N -> (B, ..., Q, ...): the positions keep (B, Q) of each
    row."""
    x = x.expand(len(keep), *x.shape[1:])
    index = keep.view(len(keep), *[1] * (dim - 1), keep.shape[1], *[1] * (x.ndim - dim - 1))
    return x.gather(dim, index.expand(*x.shape[:dim], keep.shape[1], *x.shape[dim + 1 :]))


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, d) -> (B, H_kv * n_rep, T, d): key/value head j serves query heads
    j*n_rep ... j*n_rep + n_rep - 1."""
    return x if n_rep == 1 else repeat(x, "b h t d -> b (h r) t d", r=n_rep)


# torch >= 2.5 lets the fused kernel share each key/value head with its group of query heads (enable_gqa) instead of
# copying them with repeat_kv: the same forward numbers, less memory traffic
SDPA_HAS_GQA = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)


def grouped_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """PyTorch's fused attention for queries (B, H, Nq, d) and keys, values (B, H_kv, T, d) -> (B, H, Nq, d).

    Without gradients (generation, evaluation) the kernel shares the key/value heads itself; with them, repeat_kv
    copies them first, because its backward sums each group's gradients in the order the course's training numbers
    were measured with (enable_gqa's backward rounds differently in the last bits; its forward is identical).
    """
    if SDPA_HAS_GQA and not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    n_rep = q.shape[1] // k.shape[1]
    return F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), attn_mask=mask)


class KVCache:
    """Keys (after RoPE) and values of every layer for the positions seen so far, each (B, H_kv, T, head_dim)."""

    def __init__(self):
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    @property
    def seq_len(self) -> int:
        """How many positions the cache holds."""
        return self.keys[0].shape[-2] if self.keys else 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's k, v (B, H_kv, N, d) for `layer`; return all of them so far (B, H_kv, T, d)."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=-2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=-2)
        return self.keys[layer], self.values[layer]

    def nbytes(self) -> int:
        """Memory the cached tensors take."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


class StaticKVCache:
    """A KVCache whose memory is allocated once: per layer, keys and values (B, H_kv, max_len, head_dim), filled in
    place position after position instead of growing with torch.cat every step (generate uses it)."""

    def __init__(self, config: MobileLlamaConfig, batch_size: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        shape = (batch_size, config.num_key_value_heads, max_len, config.head_dim)
        self.key_buffers = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.value_buffers = [torch.zeros_like(k) for k in self.key_buffers]
        self.lengths = [0] * config.num_hidden_layers  # positions filled, per layer
        self.max_len = max_len

    @property
    def seq_len(self) -> int:
        """How many positions the cache holds."""
        return self.lengths[0]

    @property
    def keys(self) -> list[torch.Tensor]:
        """The filled part of each layer's keys, (B, H_kv, T, d), as in KVCache."""
        return [k[:, :, :n] for k, n in zip(self.key_buffers, self.lengths, strict=True)]

    @property
    def values(self) -> list[torch.Tensor]:
        """The filled part of each layer's values, (B, H_kv, T, d), as in KVCache."""
        return [v[:, :, :n] for v, n in zip(self.value_buffers, self.lengths, strict=True)]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's k, v (B, H_kv, N, d) after `layer`'s past; return views of all of them (B, H_kv, T, d)."""
        start = self.lengths[layer]
        end = start + k.shape[-2]
        if end > self.max_len:
            raise ValueError(f"the cache holds {self.max_len} positions; {end} do not fit")
        self.key_buffers[layer][:, :, start:end] = k
        self.value_buffers[layer][:, :, start:end] = v
        self.lengths[layer] = end
        return self.key_buffers[layer][:, :, :end], self.value_buffers[layer][:, :, :end]

    def nbytes(self) -> int:
        """Memory the preallocated buffers take (all max_len positions, filled or not)."""
        return sum(t.numel() * t.element_size() for t in self.key_buffers + self.value_buffers)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention where groups of query heads share one key/value head (H_kv <= H)."""

    def __init__(self, config: MobileLlamaConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        d, hd = config.hidden_size, config.head_dim
        self.q_proj = nn.Linear(d, self.num_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, self.num_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, self.num_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(self.num_heads * hd, d, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
        cache: KVCache | StaticKVCache | None = None, return_weights: bool = False, context: tuple | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Queries from x (B, Nq, hidden), rotated by cos, sin (B or 1, 1, Nq, d) -> outputs (B, Nq, hidden).

        Keys and values come from x too (self-attention), or from context = (x_kv, cos_kv, sin_kv) when only some
        positions ask (MobileLlama's `keep`); mask (B or 1, 1, Nq, T) says which keys each query sees.
        """
        x_kv, cos_kv, sin_kv = (x, cos, sin) if context is None else context
        q = rearrange(self.q_proj(x), "b n (h d) -> b h n d", h=self.num_heads)  # (B, H, Nq, d)
        k = rearrange(self.k_proj(x_kv), "b n (h d) -> b h n d", h=self.num_kv_heads)  # (B, H_kv, N, d)
        v = rearrange(self.v_proj(x_kv), "b n (h d) -> b h n d", h=self.num_kv_heads)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos_kv, sin_kv)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, H_kv, T, d): the past and this step
        if return_weights:  # by hand, so lessons can draw the maps
            n_rep = self.num_heads // self.num_kv_heads
            out, weights = attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), mask)  # keys, values (B, H, T, d)
        else:  # PyTorch's fused kernel: same numbers
            out, weights = grouped_sdpa(q, k, v, mask), None
        return self.o_proj(rearrange(out, "b h n d -> b n (h d)")), weights  # (B, Nq, hidden)


class DecoderLayer(nn.Module):
    """A LLaMA block: x + attn(rmsnorm(x)), then x + swiglu(rmsnorm(x))."""

    def __init__(self, config: MobileLlamaConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = GroupedQueryAttention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
        cache: KVCache | StaticKVCache | None = None, return_weights: bool = False, keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, N, hidden) -> (B, N, hidden); with keep (B, Q) only those positions ask and come out: (B, Q, hidden)."""
        h = self.input_layernorm(x)  # (B, N, hidden)
        context = None
        if keep is not None:  # keys and values still come from all N positions
            context = (h, cos, sin)
            x, h = take_rows(x, keep, 1), take_rows(h, keep, 1)  # (B, Q, hidden)
            cos, sin, mask = take_rows(cos, keep, 2), take_rows(sin, keep, 2), take_rows(mask, keep, 2)
        out, weights = self.self_attn(h, cos, sin, mask, cache, return_weights, context)
        x = x + out  # (B, N or Q, hidden)
        return x + self.mlp(self.post_attention_layernorm(x)), weights


def attention_mask_4d(attention_mask: torch.Tensor | None, n_queries: int, n_keys: int) -> torch.Tensor:
    """Bool mask (B or 1, 1, Nq, Nk), True = may attend: causal, no padding keys, and each query sees itself.

    attention_mask: (B, Nk), 1 for real tokens and 0 for padding, or None (no padding). Letting a
    padding query see itself keeps its softmax finite; real queries never see padding.
    """
    device = attention_mask.device if attention_mask is not None else None
    allowed = causal_mask(n_queries, n_keys, device)  # (Nq, Nk)
    if attention_mask is None:
        return allowed[None, None]
    itself = torch.arange(n_keys, device=device) == torch.arange(n_keys - n_queries, n_keys, device=device)[:, None]
    return (allowed & attention_mask.bool()[:, None, None, :]) | itself  # (B, 1, Nq, Nk)


def positions_from_mask(attention_mask: torch.Tensor, n_queries: int) -> torch.Tensor:
    """Positions (B, Nq) of the last Nq tokens, counting only real ones, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -n_queries:]


class MobileLlama(nn.Module):
    """The causal language model: token embeddings -> decoder layers -> RMSNorm -> logits over the vocabulary."""

    def __init__(self, config: MobileLlamaConfig):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict({  # named as Hugging Face's LlamaModel
            "embed_tokens": nn.Embedding(config.vocab_size, config.hidden_size),
            "layers": nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers)),
            "norm": RMSNorm(config.hidden_size, config.rms_norm_eps),
        })
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, N) -> embeddings (B, N, hidden), checking every id is in the vocabulary."""
        if input_ids.numel() and not 0 <= int(input_ids.min()) <= int(input_ids.max()) < self.config.vocab_size:
            raise ValueError(
                f"token ids must lie in [0, {self.config.vocab_size}), got ids from {int(input_ids.min())} to "
                f"{int(input_ids.max())}; build the config with vocab_size=tokenizer.vocab_size"
            )
        return self.model.embed_tokens(input_ids)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | StaticKVCache | None = None,
        return_weights: bool = False,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, N, vocab) for token ids (B, N) or embeddings (B, N, hidden).

        attention_mask (B, past + N): 1 = real token, 0 = padding. position_ids (B, N): default from
        the mask (left padding keeps real positions at 0, 1, ...) or past, past + 1, ....
        cache: a KVCache (or StaticKVCache), updated in place with this call's keys and values.
        return_weights: also return each layer's attention weights (B, H, N, past + N), computed by hand.
        keep: (B, Q) positions whose logits are wanted (B, Q, vocab), e.g. those a training loss scores: the last
        layer computes only them, since no later layer reads its other outputs (its keys and values still cover all N).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids (B, N) or inputs_embeds (B, N, hidden)")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, N, hidden)
        batch, n = x.shape[:2]
        past = cache.seq_len if cache is not None else 0
        if past + n > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {past + n} tokens is longer than max_position_embeddings "
                f"{self.config.max_position_embeddings}; shorten it or raise the config's limit"
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch, past + n):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, "
                f"expected (batch, past + new tokens) = {(batch, past + n)}"
            )
        if position_ids is None:
            position_ids = (
                positions_from_mask(attention_mask, n) if attention_mask is not None
                else torch.arange(past, past + n, device=x.device)[None]
            )  # (B or 1, N)
        cos, sin = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)  # (B or 1, N, d)
        cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)  # broadcast over heads
        mask = attention_mask_4d(attention_mask, n, past + n)
        *body, last = self.model.layers
        all_weights = []
        for layer in body:
            x, weights = layer(x, cos, sin, mask, cache, return_weights)
            all_weights.append(weights)
        x, weights = last(x, cos, sin, mask, cache, return_weights, keep)  # no later layer reads its other positions
        all_weights.append(weights)
        logits = self.lm_head(self.model.norm(x))  # (B, N or Q, vocab)
        return (logits, all_weights) if return_weights else logits


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of predicting labels[:, t + 1] from logits[:, t]; labels equal to ignore_index do not
    count."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=ignore_index)
