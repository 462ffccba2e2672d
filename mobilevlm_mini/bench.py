"""Benchmarks: where an answer's time and energy go, per precision and thread count (lesson 10, `bench`).

One answer = vision encoder (once per image) -> projector -> prefill (the whole prompt in one pass, filling
the KV cache) -> decode (one token per pass). `run_bench` times each stage with warm-up and repeats and
reports the median with its spread (min, max, quartiles) for fp32 and the quantized models of `quant.py`,
at each thread count; it adds peak memory, the bytes a decode step reads, the machine's copy bandwidth,
and the energy per answer from `energy.py` (RAPL, or a labelled estimate), cross-checked with codecarbon.
Timings vary from run to run: compare medians together with their spread, never single numbers.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from mobilevlm_mini.energy import EnergyMeter, codecarbon_energy, energy_method
from mobilevlm_mini.language import KVCache, kv_cache_bytes
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.quant import quantize_model, size_on_disk

PRECISIONS = ("fp32", "int8", "int4", "int8-fused", "int4-fused", "int8-dynamic")  # int8/int4: by hand (QuantLinear)


@dataclass
class BenchConfig:
    """What `run_bench` measures: precisions, thread counts, warm-up and timed repeats, decode length, quantization."""

    precisions: tuple[str, ...] = ("fp32", "int8", "int4")
    threads: tuple[int, ...] = (1, 2)
    warmup: int = 2
    repeats: int = 7
    new_tokens: int = 16  # tokens decoded per timed decode run
    group_size: int = 32  # int4 group size (int8 is per channel)
    skip: tuple[str, ...] = ("vit", "projector")  # kept in float, as llama.cpp keeps MobileVLM's image side in 16-bit
    codecarbon: bool = True  # also run codecarbon once, for its figure beside ours
    country_iso_code: str = "FRA"

    def __post_init__(self):
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise ValueError(f"unknown precisions {unknown or 'none given'}; choose from {list(PRECISIONS)}")
        if not self.threads or any(t < 1 for t in self.threads):
            raise ValueError(f"threads must be numbers >= 1, got {list(self.threads)}")
        if self.repeats < 1 or self.warmup < 0 or self.new_tokens < 1:
            raise ValueError(f"need repeats >= 1, warmup >= 0, new_tokens >= 1; "
                             f"got {self.repeats}, {self.warmup}, {self.new_tokens}")


def at_precision(model: MobileVLM, precision: str, group_size: int = 32,
                 skip: tuple[str, ...] = ("vit", "projector")) -> MobileVLM:
    """The model itself for "fp32", or a copy with its Linear layers (except `skip`) in int8 per channel or int4 per
    group: QuantLinear ("int8", "int4"), PyTorch's fused weight-only kernels ("int8-fused", "int4-fused") or its
    dynamic int8 kernel, activations in int8 too ("int8-dynamic")."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision == "fp32":
        return model
    bits = 8 if precision.startswith("int8") else 4
    return quantize_model(model, bits=bits, group_size=None if bits == 8 else group_size, skip=skip,
                          fused=precision.endswith(("-fused", "-dynamic")),
                          int8_activations=precision == "int8-dynamic")


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with torch using n threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_repeats(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds of `repeats` calls of fn, after `warmup` untimed calls (caches, allocator and thread pool warmed up)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def spread(values: list[float]) -> dict[str, float | int]:
    """Median, min, max, first and third quartile, and count of a list of measurements."""
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q1, "q3": q3,
            "n": len(values)}


def peak_rss_mib() -> float:
    """The process's peak resident memory so far, in MiB (Python, torch and everything run before included)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def memory_bandwidth(megabytes: int = 256, repeats: int = 5, threads: int | None = None) -> dict[str, float]:
    """Copy a large float32 tensor (dst.copy_(src)): GB/s counting bytes read + written, best and median of
    `repeats`."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    with num_threads(threads or torch.get_num_threads()):
        times = time_repeats(lambda: dst.copy_(src), warmup=1, repeats=repeats)
    moved = 2 * src.numel() * src.element_size()
    return {"bytes_moved": moved, "best_gb_s": moved / min(times) / 1e9,
            "median_gb_s": moved / statistics.median(times) / 1e9}


def bytes_per_token(llm: nn.Module, context: int) -> int:
    """Least bytes one decode step reads: every weight of the LLM (one row of the embedding table) + the fp32 KV
    cache of `context` positions."""
    table = llm.model.embed_tokens.weight
    weights = sum(t.numel() * t.element_size() for t in llm.state_dict().values())
    weights -= (table.shape[0] - 1) * table.shape[1] * table.element_size()
    return weights + kv_cache_bytes(llm.config, context, bytes_per_value=4)


def bench_image(model: MobileVLM, seed: int = 12345) -> tuple[torch.Tensor, str]:
    """One shapes-world image (1, 3, S, S) at the model's size and its first question."""
    from mobilevlm_mini.data import WorldConfig, generate_dataset, images_to_tensor

    example = generate_dataset(1, seed, WorldConfig(image_size=model.config.vit.image_size))[0]
    return images_to_tensor([example["image"]]), example["questions"][0]


@torch.no_grad()
def bench_model(model: MobileVLM, image: torch.Tensor, question: str, config: BenchConfig) -> dict:
    """Time every stage of one answer (batch 1) with the current thread count; energy per answer too."""
    model.eval()
    features = model.encode_images(image)  # (1, N, D_vision)
    visual = model.project(features)  # (1, K, hidden)
    input_ids, _ = model.prompts([question], visual.shape[1])
    embeds = model.merge(input_ids, visual)  # (1, P, hidden): the prompt with the image inside
    llm = model.llm

    def decode() -> float:
        cache = KVCache()
        token = llm(inputs_embeds=embeds, cache=cache)[:, -1].argmax(-1, keepdim=True)  # prefill, untimed
        start = time.perf_counter()
        for _ in range(config.new_tokens):
            token = llm(input_ids=token, cache=cache)[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        return config.new_tokens / (time.perf_counter() - start)

    def answer() -> list[str]:
        return model.answer(model.encode_images(image), [question])

    for _ in range(config.warmup):
        decode()
    row = {
        "vision_ms": time_repeats(lambda: model.encode_images(image), config.warmup, config.repeats),
        "projector_ms": time_repeats(lambda: model.project(features), config.warmup, config.repeats),
        "prefill_ms": time_repeats(lambda: llm(inputs_embeds=embeds, cache=KVCache()), config.warmup, config.repeats),
    }
    row = {key: spread([1000 * t for t in times]) for key, times in row.items()}
    row["decode_tokens_per_s"] = spread([decode() for _ in range(config.repeats)])
    with EnergyMeter() as meter:
        answer_times = time_repeats(answer, config.warmup, config.repeats)
    row["answer_ms"] = spread([1000 * t for t in answer_times])
    total = config.warmup + config.repeats
    row["energy_per_answer_j"] = meter.reading.joules / total
    row["cpu_seconds_per_answer"] = meter.reading.cpu_seconds / total
    row["energy_method"] = meter.reading.method
    row["peak_rss_mib"] = peak_rss_mib()
    return row


def run_bench(model: MobileVLM, config: BenchConfig | None = None, progress: bool = False) -> dict:
    """Every figure of `python -m mobilevlm_mini bench`, as JSON-ready data (see the module docstring); default
    BenchConfig()."""
    from tqdm.auto import tqdm

    config = config or BenchConfig()

    image, question = bench_image(model)
    prompt_tokens = model.prompts([question])[0].shape[1]
    results, models = [], {}
    jobs = [(p, t) for p in config.precisions for t in config.threads]
    for precision, threads in tqdm(jobs, desc="bench", disable=not progress):
        if precision not in models:
            models[precision] = at_precision(model, precision, config.group_size, config.skip)
        quantized = models[precision]
        with num_threads(threads):
            row = bench_model(quantized, image, question, config)
        results.append({
            "precision": precision, "threads": threads, "weights_bytes": size_on_disk(quantized),
            "llm_weights_bytes": size_on_disk(quantized.llm),
            "llm_bytes_per_token": bytes_per_token(quantized.llm, prompt_tokens + config.new_tokens // 2), **row,
        })
    report = {
        "settings": {**asdict(config), "question": question, "prompt_tokens": prompt_tokens,
                     "visual_tokens": model.num_visual_tokens, "batch_size": 1},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "memory_bandwidth": memory_bandwidth(threads=max(config.threads)),
        "energy_method": energy_method(),
        "results": results,
        "codecarbon": None,
    }
    if config.codecarbon:
        report["codecarbon"] = codecarbon_check(model, image, question, config)
    return report


def codecarbon_check(model: MobileVLM, image: torch.Tensor, question: str, config: BenchConfig,
                     seconds: float = 3.0) -> dict:
    """Answer for about `seconds` (fp32, most threads) under codecarbon and our meter at once; joules per answer from
    each."""
    answers = 0

    def work() -> None:
        nonlocal answers
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.answer(model.encode_images(image), [question])
            answers += 1

    with num_threads(max(config.threads)):
        model.answer(model.encode_images(image), [question])  # warm-up
        result = codecarbon_energy(work, config.country_iso_code)
    ours = result.pop("ours")
    return {
        **result, "answers": answers, "cpu_j_per_answer": result["cpu_j"] / answers,
        "ram_j_per_answer": result["ram_j"] / answers,
        "ours_j_per_answer": ours.joules / answers, "ours_method": ours.method,
        "method_difference": (
            "codecarbon models the CPU's power from its TDP table (or a generic constant) times this process's share "
            "of the machine's CPU load, sampled over wall time, and adds a RAM power constant; ours is RAPL when "
            "readable, else process CPU time x a per-core power"
        ),
    }


def format_report(report: dict) -> str:
    """The bench results as a table: median [min-max] of each stage per precision and thread count."""
    def cell(s: dict, digits: int = 1) -> str:
        return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"

    lines = [f"{'precision':<9} {'thr':>3} {'LLM MB':>7} {'vision ms':>18} {'projector ms':>18} {'prefill ms':>18} "
             f"{'decode tok/s':>21} {'answer ms':>18} {'J/answer':>9}"]
    for r in report["results"]:
        lines.append(
            f"{r['precision']:<9} {r['threads']:>3} {r['llm_weights_bytes'] / 1e6:>7.2f} {cell(r['vision_ms'], 2):>18} "
            f"{cell(r['projector_ms'], 2):>18} {cell(r['prefill_ms'], 2):>18} {cell(r['decode_tokens_per_s'], 0):>21} "
            f"{cell(r['answer_ms'], 1):>18} {r['energy_per_answer_j']:>9.3f}"
        )
    bandwidth = report["memory_bandwidth"]
    lines += [
        "median [min-max] of each stage; batch 1; "
        f"copy bandwidth {bandwidth['best_gb_s']:.1f} GB/s (best), {bandwidth['median_gb_s']:.1f} GB/s (median)",
        f"energy: {report['energy_method']}",
    ]
    cc = report["codecarbon"]
    if cc is not None:
        lines.append(
            f"codecarbon ({cc['country_iso_code']}): CPU {cc['cpu_j_per_answer']:.3f} J "
            f"+ RAM {cc['ram_j_per_answer']:.3f} J per answer "
            f"beside ours {cc['ours_j_per_answer']:.3f} J per answer (fp32, {cc['answers']} answers); "
            f"{cc['method_difference']}"
        )
    return "\n".join(lines)
