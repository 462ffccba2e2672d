"""Generation: greedy, temperature, top-k and top-p sampling, with or without the KV cache (lesson 06).

One token at a time: run the model, turn the last position's logits into a next token, append it,
repeat until every sequence has said <eos> or the length limit is reached. With the cache, each step
feeds only the new token; without it, each step recomputes the whole sequence.

The cached loop is engineered (`CachedDecoder`): whatever one generation reuses is built once before
its first step (a preallocated KV cache, the RoPE tables and attention mask of every position it can
reach, q/k/v weights fused into one matrix, gate/up into another), and each step runs the same arithmetic as
`MobileLlama.forward` on views of those; one token times a large matrix is split across threads (`row_times`).
`use_cache=False` runs `MobileLlama.forward` itself: the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini.language import (
    DecoderLayer,
    GroupedQueryAttention,
    KVCache,
    MobileLlama,
    StaticKVCache,
    SwiGLU,
    attention_mask_4d,
    grouped_sdpa,
    positions_from_mask,
    rope_cos_sin,
)
from mobilevlm_mini.tokenizer import Tokenizer


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (..., V); set the rest to -inf."""
    if k <= 0:
        raise ValueError(f"top_k must be a positive number of tokens, got {k}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the most likely tokens whose probabilities first add up to >= p; -inf elsewhere."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop_sorted = probs.cumsum(-1) - probs >= p  # the mass above a token already reaches p (never the top token)
    drop = torch.empty_like(drop_sorted).scatter_(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, V): argmax when temperature is 0, else a sample."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def is_token_ids(prompt: torch.Tensor) -> bool:
    """Whether a prompt is token ids (B, P) rather than embeddings (B, P, hidden)."""
    return not prompt.is_floating_point()


def is_plain_linear(module: nn.Module) -> bool:
    """An nn.Linear itself (not, say, lesson 09's QuantLinear), whose weight can be used directly."""
    return type(module) is nn.Linear


SPLIT_FROM = 2**20  # weights from which one row times the matrix is split across threads (real widths, not tiny)


def row_times(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """F.linear(x, weight) (x (..., in), weight (out, in)); when x is a single row and the weight large, the output rows
    are cut into one block per thread and run as one torch.bmm, whose blocks go to separate cores. A single
    matrix-vector product streams its weight through one core, at that core's share of the memory bandwidth."""
    threads, (out, width) = torch.get_num_threads(), weight.shape
    if threads == 1 or x.numel() != width or weight.numel() < SPLIT_FROM or out % threads:
        return F.linear(x, weight)
    blocks = weight.view(threads, out // threads, width).transpose(1, 2)  # (T, in, out / T): views, no copy
    return torch.bmm(x.reshape(1, 1, width).expand(threads, 1, width), blocks).reshape(*x.shape[:-1], out)


def projection(*modules: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the modules' outputs side by side: one matrix product with their weights stacked when they are plain
    bias-free nn.Linear layers (the model keeps its own weights, under their own names), else one call each."""
    if all(is_plain_linear(m) and m.bias is None for m in modules):
        weight = modules[0].weight if len(modules) == 1 else torch.cat([m.weight for m in modules])  # (out, in)
        return partial(row_times, weight=weight)
    return lambda x: torch.cat([m(x) for m in modules], dim=-1)


class CachedDecoder:
    """One cached generation's state, built once: a StaticKVCache, the RoPE tables and the attention mask of every
    position the generation can reach, and each layer's q/k/v weights stacked into one matrix, as are the SwiGLU's gate
    and up weights (one matrix product instead of three, and of two; the model's own weights and names do not change).

    `next_logits()` runs the positions not seen yet (the prompt, then each new token) through the model, with the same
    arithmetic as `MobileLlama.forward` and a cache, and returns the last one's logits; `append(token)` queues a token.
    """

    def __init__(self, model: MobileLlama, prompt: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int):
        config, (batch, length) = model.config, attention_mask.shape
        self.model, self.config = model, config
        self.pending = model.embed(prompt) if is_token_ids(prompt) else prompt  # (B, n, hidden): not run yet
        dtype, device = self.pending.dtype, attention_mask.device
        total = min(length + max_new_tokens, max(length, config.max_position_embeddings))  # positions it can reach
        mask = torch.cat([attention_mask, attention_mask.new_ones(batch, total - length)], dim=1)  # (B, total)
        cos, sin = rope_cos_sin(positions_from_mask(mask, total), config.head_dim, config.rope_theta)  # (B, total, d)
        half = config.head_dim // 2
        # rotate_half(x) * sin == x[..., swap] * signed_sin: one gather instead of chunk, neg and cat every step
        self.swap = torch.cat([torch.arange(half, 2 * half), torch.arange(half)]).to(device)
        self.cos = cos[:, None].to(dtype)  # (B, 1, total, d)
        self.sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)[:, None].to(dtype)
        self.padded = not bool(attention_mask.all())
        self.mask = attention_mask_4d(mask, total, total)  # (B, 1, total, total): row t = the keys position t sees
        self.cache = StaticKVCache(config, batch, total, dtype, device)
        self.head = projection(model.lm_head)
        self.layers = [
            (layer.input_layernorm, projection(attn.q_proj, attn.k_proj, attn.v_proj), projection(attn.o_proj),
             layer.post_attention_layernorm,
             projection(layer.mlp.gate_proj, layer.mlp.up_proj), projection(layer.mlp.down_proj))
            for layer in model.model.layers for attn in [layer.self_attn]
        ]

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether the model is the MobileLlama this class re-implements a step of: its own forward and layer classes
        and no hooks (a model changed in other ways generates through its own forward, with a KVCache)."""
        layers_as_built = all(type(layer) is DecoderLayer and type(layer.self_attn) is GroupedQueryAttention
                              and type(layer.mlp) is SwiGLU
                              for layer in model.model.layers)
        hooked = any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
        return type(model).forward is MobileLlama.forward and layers_as_built and not hooked

    def append(self, token: torch.Tensor) -> None:
        """Queue next tokens (B,) for the next step."""
        self.pending = F.embedding(token[:, None], self.model.model.embed_tokens.weight)  # (B, 1, hidden)

    def next_logits(self) -> torch.Tensor:
        """Run the queued positions through every layer, filling the cache; the last position's logits (B, V)."""
        x, heads, kv_heads = self.pending, self.config.num_attention_heads, self.config.num_key_value_heads
        (batch, n), start = x.shape[:2], self.cache.seq_len
        end = start + n
        if end > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {end} tokens is longer than max_position_embeddings "
                             f"{self.config.max_position_embeddings}; shorten it or raise the config's limit")
        cos, sin = self.cos[:, :, start:end], self.sin[:, :, start:end]  # (B, 1, n, d)
        # one query that may see every key needs no mask (the kernel's fastest path)
        mask = self.mask[:, :, start:end, :end] if self.padded or n > 1 else None  # (B, 1, n, end)
        for i, (input_norm, qkv_proj, o_proj, post_norm, gate_up_proj, down_proj) in enumerate(self.layers):
            qkv = qkv_proj(input_norm(x)).view(batch, n, heads + 2 * kv_heads, -1).transpose(1, 2)
            qk = qkv[:, : heads + kv_heads]  # (B, H + H_kv, n, d): RoPE turns queries and keys together
            qk = qk * cos + qk[..., self.swap] * sin
            k, v = self.cache.update(i, qk[:, heads:], qkv[:, heads + kv_heads :])  # (B, H_kv, end, d)
            out = grouped_sdpa(qk[:, :heads], k, v, mask)  # (B, H, n, d)
            x = x + o_proj(out.transpose(1, 2).reshape(batch, n, -1))
            gate, up = gate_up_proj(post_norm(x)).chunk(2, dim=-1)  # SwiGLU, gate and up in one product
            x = x + down_proj(F.silu(gate) * up)
        return self.head(self.model.model.norm(x[:, -1]))  # (B, V): only the last position is needed


class ModelSteps:
    """The loop through MobileLlama.forward itself: with a cache each step feeds only the new token (the loop before
    CachedDecoder, used for models it does not know); without one each step recomputes the whole sequence."""

    def __init__(self, model: MobileLlama, prompt: torch.Tensor, attention_mask: torch.Tensor,
                 cache: KVCache | None = None):
        self.model, self.mask, self.cache = model, attention_mask, cache
        self.step = {"input_ids": prompt} if is_token_ids(prompt) else {"inputs_embeds": prompt}

    def append(self, token: torch.Tensor) -> None:
        """Append next tokens (B,) to the sequence."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(token), 1)], dim=1)
        if self.cache is not None:  # the past is in the cache: feed only the new token
            self.step = {"input_ids": token[:, None]}
        elif "input_ids" in self.step:  # recompute everything, the new token appended
            self.step = {"input_ids": torch.cat([self.step["input_ids"], token[:, None]], dim=1)}
        else:
            new = self.model.embed(token[:, None])
            self.step = {"inputs_embeds": torch.cat([self.step["inputs_embeds"], new], dim=1)}

    def next_logits(self) -> torch.Tensor:
        """The last position's logits (B, V)."""
        return self.model(**self.step, attention_mask=self.mask, cache=self.cache)[:, -1]


@torch.no_grad()
def generate(
    model: MobileLlama,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """New tokens (B, <= max_new_tokens) after left-padded prompts given as ids (B, P) or embeddings (B, P, hidden).

    A sequence that has produced eos_token_id continues with pad_token_id; generation stops when all
    have, or after max_new_tokens. Pass a seeded torch.Generator to make sampling repeatable.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one prompt: input_ids (B, P) or inputs_embeds (B, P, hidden)")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    prompt = input_ids if input_ids is not None else inputs_embeds
    batch, length = prompt.shape[:2]
    mask = (torch.ones(batch, length, dtype=torch.long, device=prompt.device) if attention_mask is None
            else attention_mask)
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, expected (batch, prompt) = {(batch, length)}")
    if (mask[:, 1:] < mask[:, :-1]).any():
        raise ValueError("generation needs left-padded prompts (padding before the text): use padding_side='left'")
    if not use_cache:
        decoder = ModelSteps(model, prompt, mask)
    elif CachedDecoder.supports(model):
        decoder = CachedDecoder(model, prompt, mask, max_new_tokens)
    else:
        decoder = ModelSteps(model, prompt, mask, KVCache())
    finished = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    new_tokens = []
    for step in range(max_new_tokens):
        logits = decoder.next_logits()  # (B, V): the next token's scores
        token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
        if eos_token_id is not None:  # a finished row only pads
            token = token.masked_fill(finished, pad_token_id)
            finished |= token == eos_token_id
        new_tokens.append(token)
        if step + 1 == max_new_tokens or (eos_token_id is not None and bool(finished.all())):
            break
        decoder.append(token)  # the past is in the cache: the next step runs only this token
    return torch.stack(new_tokens, dim=1)  # (B, n_new)


def complete(model: MobileLlama, tokenizer: Tokenizer, prompts: list[str], **kwargs) -> list[str]:
    """Continue each text prompt (batched, left-padded) and return the continuations as text, stopping at <eos>."""
    input_ids, attention_mask = tokenizer.encode_batch(prompts, padding_side="left")
    kwargs = {"eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id, **kwargs}
    new = generate(model, input_ids, attention_mask, **kwargs)
    return [tokenizer.decode(row) for row in new]
