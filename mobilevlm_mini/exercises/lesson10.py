"""Checkers for lesson 10, CPU speed and energy."""

from __future__ import annotations

from typing import Any

from mobilevlm_mini.bench import bytes_per_token
from mobilevlm_mini.exercises._checking import NotYet, _number, checker
from mobilevlm_mini.language import count_parameters as llm_parameters
from mobilevlm_mini.language import kv_cache_bytes, preset


@checker
def check_10_exercise_2(llm: Any, tiny_positions: Any, real_positions: Any) -> str:
    """Lesson 10, exercise 2: the context at which the KV cache is as many bytes as the weights, for our fp32 model and
    MobileLLaMA-1.4B in int4."""
    weights = bytes_per_token(llm, 0)
    tiny = weights / (bytes_per_token(llm, 1) - weights)
    real = preset("mobilellama-1.4b")
    full = llm_parameters(real) * 4 / 8 / kv_cache_bytes(real, 1)
    got_tiny, got_real = _number(tiny_positions, "tiny_positions"), _number(real_positions, "real_positions")
    if abs(got_tiny - tiny) > max(1.0, 0.01 * tiny):
        hint = ("our model stores its cache in fp32 (4 bytes a value): "
                if abs(got_tiny - 2 * tiny) < max(1.0, 0.01 * tiny) else "")
        raise NotYet(f"`tiny_positions` is not right: {hint}divide bytes_per_token(llm, 0) by what one more position "
                     "adds")
    if abs(got_real - full) > max(1.0, 0.01 * full):
        if abs(got_real - 4 * full) < 0.04 * full:
            hint = "weights in fp16 take 2 bytes; at 4 bits each takes half a byte"
        elif abs(got_real - full / 2) < 0.01 * full:
            hint = "the cache is fp16 (2 bytes a value), kv_cache_bytes's default"
        else:
            hint = "divide the 4-bit weights' bytes (count_parameters x 4 / 8) by kv_cache_bytes(config, 1)"
        raise NotYet(f"`real_positions` is not right: {hint}")
    return ("past that context the cache costs more reads per token than the weights: what that does to a long chat "
            "is discussed in the solution")
