"""Checkers for lesson 12, real checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from safetensors import safe_open

from mobilevlm_mini.checkpoint import WEIGHTS
from mobilevlm_mini.exercises._checking import NotYet, _given, _number, checker
from mobilevlm_mini.hf import config_from_hf
from mobilevlm_mini.language import MobileLlama, kv_cache_bytes, preset
from mobilevlm_mini.language import count_parameters as llm_parameters

TINYLLAMA = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
             "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "rms_norm_eps": 1e-5}


@checker
def check_12_exercise_2(config: Any, params: Any, kv_bytes: Any) -> str:
    """Lesson 12, exercise 2: TinyLlama-1.1B mapped with config_from_hf, its parameters, and its fp16 KV cache for 2048
    tokens."""
    want = config_from_hf(TINYLLAMA)
    if not isinstance(_given(config, "config"), type(want)):
        raise NotYet(f"`config` should be what config_from_hf(tinyllama) returns, got {type(config).__name__}")
    if config != want:
        raise NotYet("`config` differs from TinyLlama's config.json mapped with config_from_hf: map the `tinyllama` "
                     "dict as it is")
    if _number(params, "params") != llm_parameters(want):
        raise NotYet("`params` is not TinyLlama's parameter count: count the skeleton's parameters (or "
                     "count_parameters(config))")
    got = _number(kv_bytes, "kv_bytes")
    if got != kv_cache_bytes(want, 2048):
        hint = ("that is the cache of 32 key/value heads; TinyLlama keeps only 4"
                if got == kv_cache_bytes(dataclasses.replace(want, num_key_value_heads=32), 2048)
                else "use kv_cache_bytes(config, 2048): fp16, keys and values of every layer")
        raise NotYet(f"`kv_bytes` is not TinyLlama's fp16 KV cache for 2048 tokens: {hint}")
    return ("grouped-query attention makes TinyLlama's cache 8.7x smaller than MobileLLaMA-1.4B's; why refusing Qwen2 "
            "is right is in the solution")


@checker
def check_12_exercise_4(saved: Any, tiny_tied: Any, folder: Any) -> str:
    """Lesson 12, exercise 4: what tying saves in MobileLLaMA-1.4B, and a tiny tied model exported with its matrix
    stored once."""
    big = preset("mobilellama-1.4b")
    got = _number(saved, "saved")
    if got != big.vocab_size * big.hidden_size:
        hint = "that is in fp16 bytes; count parameters" if got == 2 * big.vocab_size * big.hidden_size else \
            "compare count_parameters of the untied and the tied config"
        raise NotYet(f"`saved` is not the number of parameters tying saves in MobileLLaMA-1.4B: {hint}")
    if not isinstance(_given(tiny_tied, "tiny_tied"), MobileLlama) or not tiny_tied.config.tie_word_embeddings:
        raise NotYet("`tiny_tied` should be a MobileLlama built from preset('tiny', ..., tie_word_embeddings=True)")
    if tiny_tied.lm_head.weight is not tiny_tied.model.embed_tokens.weight:
        raise NotYet("the tied model's lm_head and embeddings are not the same tensor")
    path = Path(_given(folder, "folder")) / WEIGHTS
    if not path.exists():
        raise NotYet(f"no {WEIGHTS} in {folder}: pass the folder export_llama returned")
    with safe_open(str(path), framework="pt") as stored:
        names = set(stored.keys())
    if "lm_head.weight" in names or "model.embed_tokens.weight" not in names:
        raise NotYet("the exported file should store the shared matrix once, as model.embed_tokens.weight, and no "
                     "lm_head.weight")
    return f"tying saves {got / 1e6:.1f}M parameters in MobileLLaMA-1.4B, and the file stores the matrix once"
