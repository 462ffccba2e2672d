"""Generation: greedy, temperature, top-k and top-p sampling, with or without the KV cache (lesson 06).

One token at a time: run the model, turn the last position's logits into a next token, append it,
repeat until every sequence has said <eos> or the length limit is reached. With the cache, each step
feeds only the new token; without it, each step recomputes the whole sequence.
"""

from __future__ import annotations

import torch

from mobilevlm_mini.language import KVCache, MobileLlama
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
    if (mask[:, 1:] < mask[:, :-1]).any():
        raise ValueError("generation needs left-padded prompts (padding before the text): use padding_side='left'")
    cache = KVCache() if use_cache else None
    step = {"input_ids": input_ids} if input_ids is not None else {"inputs_embeds": inputs_embeds}
    finished = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    new_tokens = []
    for _ in range(max_new_tokens):
        logits = model(**step, attention_mask=mask, cache=cache)[:, -1]  # (B, V): the next token's scores
        token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
        token = token.masked_fill(finished, pad_token_id)
        new_tokens.append(token)
        if eos_token_id is not None:
            finished |= token == eos_token_id
        if finished.all():
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        if use_cache:  # the past is in the cache: feed only the new token
            step = {"input_ids": token[:, None]}
        elif "input_ids" in step:  # recompute everything, the new token appended
            step = {"input_ids": torch.cat([step["input_ids"], token[:, None]], dim=1)}
        else:
            step = {"inputs_embeds": torch.cat([step["inputs_embeds"], model.embed(token[:, None])], dim=1)}
    return torch.stack(new_tokens, dim=1)  # (B, n_new)


def complete(model: MobileLlama, tokenizer: Tokenizer, prompts: list[str], **kwargs) -> list[str]:
    """Continue each text prompt (batched, left-padded) and return the continuations as text, stopping at <eos>."""
    input_ids, attention_mask = tokenizer.encode_batch(prompts, padding_side="left")
    kwargs = {"eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id, **kwargs}
    new = generate(model, input_ids, attention_mask, **kwargs)
    return [tokenizer.decode(row) for row in new]
