"""Decoding at MobileLLaMA-1.4B's real width: fp32 against int8 and int4 (lessons 09 and 10, `bench --real-width`).

Our tiny model sits in the CPU's caches, where per-operator overhead sets the speed. At the real width (hidden 2048,
MLP 5632, 16 heads, vocabulary 32,000) one decode step reads every weight once from DRAM and multiplies each by one
number: memory sets the speed, and storing fewer bytes per weight should read them faster. `run_real_width` builds
a few such decoder layers with random weights (the speed of a matrix product does not depend on what is in it),
decodes token by token with the course's cached loop (`generate.CachedDecoder`) at each precision, and reports:

- tokens/s of the stack built (median and spread of `repeats` runs after `warmup`), and scaled to the real 24 layers:
  step = head + 24 x (measured step - head) / layers, where `head` (final norm + output layer) is timed alone;
- bytes one step reads, the machine's copy bandwidth, and the fraction of that roofline reached;
- prefill of `prompt_tokens` positions in one pass: its matrix-product FLOP/s, beside `doctor`'s compute figure;
- the quantized stacks' logits against fp32 over `compare_tokens` positions of fp32's own greedy text, fed one
  token per step through the decode path that is timed (teacher forced): the largest relative error and the share
  of positions with the same top-1 token.

Precisions are `bench.at_precision`'s: int8/int4 by hand (QuantLinear, dequantizes every call) and
int8-fused/int4-fused (PyTorch's weight-only kernels, `quant.FusedQuantLinear`), int8-dynamic (int8 activations too).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from mobilevlm_mini.bench import (
    PRECISIONS,
    at_precision,
    bytes_per_token,
    memory_bandwidth,
    num_threads,
    spread,
    time_repeats,
)
from mobilevlm_mini.generate import CachedDecoder, generate, projection
from mobilevlm_mini.language import MobileLlama, MobileLlamaConfig, kv_cache_bytes, layer_linear_weights, preset

REAL_LAYERS = 24  # MobileLLaMA-1.4B's depth: what the per-layer times are scaled to
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "asimddp",
                "i8mm", "bf16")  # x86 and Arm vector extensions the int8/int4/bf16 kernels can use


def vector_extensions() -> list[str]:
    """The CPU's vector extensions among VECTOR_FLAGS, from /proc/cpuinfo (empty where it is not readable)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    flags = {flag for line in lines if line.startswith(("flags", "Features")) for flag in line.split(":", 1)[1].split()}
    return [flag for flag in VECTOR_FLAGS if flag in flags]


@dataclass
class RealWidthConfig:
    """What `run_real_width` builds and times: width (an LLM config), layers built, precisions, repeats, lengths."""

    llm: MobileLlamaConfig = field(default_factory=lambda: preset("mobilellama-1.4b"))
    layers: int = 4  # decoder layers built; 4 at the real width take 1.3 GB in fp32
    precisions: tuple[str, ...] = ("fp32", "int8-fused", "int8-dynamic", "int4-fused", "int8", "int4")
    threads: int | None = None  # None: torch's current thread count
    warmup: int = 1
    repeats: int = 5
    new_tokens: int = 16  # tokens per timed decode run
    by_hand_tokens: int = 2  # tokens per timed run of "int8"/"int4", which dequantize every weight on every call
    prompt_tokens: int = 64  # the prefill's length, and the context decoding starts from
    compare_tokens: int = 64  # positions whose logits are compared with fp32
    group_size: int = 32  # int4 weights per scale
    seed: int = 0

    def __post_init__(self):
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or "fp32" not in self.precisions:
            raise ValueError(f"precisions must include fp32 (the reference) and come from {list(PRECISIONS)}; "
                             f"got {list(self.precisions)}")
        counts = (self.layers, self.repeats, self.new_tokens, self.by_hand_tokens, self.prompt_tokens,
                  self.compare_tokens)
        if min(counts) < 1 or self.warmup < 0:
            raise ValueError("layers, repeats, new_tokens, by_hand_tokens, prompt_tokens and compare_tokens "
                             "must be >= 1, warmup >= 0")


def build_stack(config: RealWidthConfig) -> MobileLlama:
    """The LLM at `config.llm`'s width with `config.layers` decoder layers and random weights (seeded)."""
    torch.manual_seed(config.seed)
    return MobileLlama(replace(config.llm, num_hidden_layers=config.layers)).eval()


def layer_bytes(llm: MobileLlama, context: int) -> int:
    """Bytes one decode step reads per decoder layer: its weights (as stored) + its fp32 KV cache of `context`
    positions."""
    weights = sum(t.numel() * t.element_size() for t in llm.model.layers[0].state_dict().values())
    return weights + kv_cache_bytes(replace(llm.config, num_hidden_layers=1), context, bytes_per_value=4)


@torch.no_grad()
def decode_seconds(llm: MobileLlama, prompt: torch.Tensor, new_tokens: int) -> float:
    """Seconds per token of greedy cached decoding after an untimed prefill of `prompt` (1, P)."""
    decoder = CachedDecoder(llm, prompt, torch.ones_like(prompt), new_tokens)
    logits = decoder.next_logits()  # prefill
    start = time.perf_counter()
    for _ in range(new_tokens):
        decoder.append(logits.argmax(-1))
        logits = decoder.next_logits()  # (1, V)
    return (time.perf_counter() - start) / new_tokens


def prefill_flops(config: MobileLlamaConfig, positions: int) -> int:
    """Matrix-product FLOPs of one prefill of `positions` tokens: every Linear of every layer on every position,
    the attention scores and their weighted sum (all pairs, not halved for the causal mask), the output layer once."""
    d = config.hidden_size
    per_layer = 2 * positions * layer_linear_weights(config) + 2 * 2 * positions * positions * d
    return config.num_hidden_layers * per_layer + 2 * d * config.vocab_size


@torch.no_grad()
def logit_agreement(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Relative error ||other - reference|| / ||reference|| per position of two logit tensors (T, V), and the share of
    positions with the same largest logit."""
    errors = (other - reference).norm(dim=-1) / reference.norm(dim=-1)  # (T,)
    return {"max_relative_error": float(errors.max()), "median_relative_error": float(errors.median()),
            "top1_agreement": float((other.argmax(-1) == reference.argmax(-1)).float().mean())}


@torch.no_grad()
def decode_logits(llm: MobileLlama, text: torch.Tensor, prompt_tokens: int) -> torch.Tensor:
    """Logits (T, V) predicting each token of text (1, P + T) after its first prompt_tokens, fed one per step."""
    decoder = CachedDecoder(llm, text[:, :prompt_tokens], torch.ones_like(text[:, :prompt_tokens]),
                            text.shape[1] - prompt_tokens)
    logits = [decoder.next_logits()[0]]  # (V,) after the prompt
    for token in text[0, prompt_tokens:-1]:
        decoder.append(token.reshape(1))
        logits.append(decoder.next_logits()[0])
    return torch.stack(logits)  # (T, V)


@torch.no_grad()
def measure(llm: MobileLlama, config: RealWidthConfig, prompt: torch.Tensor, text: torch.Tensor, hidden: torch.Tensor,
            bandwidth_gb_s: float, reference_logits: torch.Tensor, by_hand: bool) -> dict:
    """One precision's row of `run_real_width`: decode, head and prefill times, bytes, roofline, logits vs fp32."""
    tokens = config.by_hand_tokens if by_hand else config.new_tokens
    runs = [decode_seconds(llm, prompt, tokens) for _ in range(config.warmup + config.repeats)]
    step = runs[config.warmup:]
    head_product = projection(llm.lm_head)  # as CachedDecoder runs the output layer
    head = statistics.median(time_repeats(lambda: head_product(llm.model.norm(hidden)), config.warmup + 2,
                                          config.repeats))
    prefill = time_repeats(lambda: CachedDecoder(llm, prompt, torch.ones_like(prompt), 1).next_logits(),
                           config.warmup, config.repeats)
    per_layer = (statistics.median(step) - head) / config.layers
    context = config.prompt_tokens + tokens // 2  # the middle of a timed decode run
    read = bytes_per_token(llm, context)
    return {
        "tokens_per_run": tokens,
        "tokens_per_s": spread([1 / s for s in step]),
        "ms_per_token": spread([1000 * s for s in step]),
        "head_ms": 1000 * head,
        "layer_ms": 1000 * per_layer,
        "bytes_per_token": read,
        "roofline_fraction": read / statistics.median(step) / (bandwidth_gb_s * 1e9),
        "tokens_per_s_24_layers": 1 / (head + REAL_LAYERS * per_layer),
        "bytes_per_token_24_layers": read + (REAL_LAYERS - config.layers) * layer_bytes(llm, context),
        "prefill_ms": spread([1000 * s for s in prefill]),
        "prefill_gflop_s": prefill_flops(llm.config, config.prompt_tokens) / statistics.median(prefill) / 1e9,
        "logits_vs_fp32": logit_agreement(reference_logits, decode_logits(llm, text, config.prompt_tokens)),
    }


@torch.no_grad()
def run_real_width(config: RealWidthConfig | None = None, progress: bool = False) -> dict:
    """Every figure of `bench --real-width` (see the module docstring) as JSON-ready data; default
    RealWidthConfig()."""
    from tqdm.auto import tqdm

    from mobilevlm_mini.doctor import machine

    config = config or RealWidthConfig()
    threads = config.threads or torch.get_num_threads()
    fp32 = build_stack(config)
    generator = torch.Generator().manual_seed(config.seed)
    prompt = torch.randint(0, config.llm.vocab_size, (1, config.prompt_tokens), generator=generator)  # (1, P)
    text = torch.cat([prompt, generate(fp32, prompt, max_new_tokens=config.compare_tokens)], dim=1)  # fp32's greedy
    hidden = torch.randn(1, config.llm.hidden_size, generator=generator)  # (1, hidden): input of the timed head
    with num_threads(threads):
        bandwidth = memory_bandwidth(threads=threads)
        one_core = memory_bandwidth(threads=1)  # what a single core pulls: a product that runs on one core gets this
        reference_logits = decode_logits(fp32, text, config.prompt_tokens)  # (T, V): predicting each new token
        results = {name: measure(at_precision(fp32, name, config.group_size, skip=()), config, prompt, text,
                                 hidden, bandwidth["best_gb_s"], reference_logits, by_hand=name in ("int8", "int4"))
                   for name in tqdm(config.precisions, desc="real width", disable=not progress)}
    for row in results.values():
        row["speedup_vs_fp32"] = row["tokens_per_s"]["median"] / results["fp32"]["tokens_per_s"]["median"]
    settings = asdict(config)
    settings["threads"] = threads
    return {
        "settings": settings,
        "machine": {**machine(), "vector_extensions": vector_extensions(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "bandwidth_gb_s": bandwidth["best_gb_s"],
        "bandwidth": bandwidth,
        "bandwidth_1_thread_gb_s": one_core["best_gb_s"],
        "precisions": results,
        "roofline_fraction": {name: row["roofline_fraction"] for name, row in results.items()},
    }


def format_real_width(report: dict) -> str:
    """The real-width figures as a table, one row per precision."""
    s = report["settings"]
    lines = [f"{'precision':<11} {'MB/token':>9} {'tokens/s [min-max]':>20} {'x fp32':>7} {'of roofline':>12} "
             f"{'24 layers tok/s':>16} {'prefill GFLOP/s':>16} {'top-1 vs fp32':>14} {'max rel. err':>13}"]
    for name, r in report["precisions"].items():
        t = r["tokens_per_s"]
        lines.append(
            f"{name:<11} {r['bytes_per_token'] / 1e6:>9.1f} {t['median']:>8.2f} [{t['min']:.2f}-{t['max']:.2f}] "
            f"{r['speedup_vs_fp32']:>6.2f}x {r['roofline_fraction']:>11.0%} {r['tokens_per_s_24_layers']:>16.2f} "
            f"{r['prefill_gflop_s']:>16.1f} {r['logits_vs_fp32']['top1_agreement']:>14.1%} "
            f"{r['logits_vs_fp32']['max_relative_error']:>13.2%}")
    llm = s["llm"]
    lines.append(f"{s['layers']} decoder layers of hidden {llm['hidden_size']}, MLP {llm['intermediate_size']}, "
                 f"vocabulary {llm['vocab_size']}, random weights; {s['threads']} threads; median of {s['repeats']} "
                 f"runs of {s['new_tokens']} tokens; copy bandwidth {report['bandwidth_gb_s']:.1f} GB/s; "
                 f"doctor {report['machine']['doctor_gflops']:.0f} GFLOP/s")
    return "\n".join(lines)
