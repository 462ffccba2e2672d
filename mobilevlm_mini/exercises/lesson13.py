"""Checkers for lesson 13, from one laptop to a cluster."""

from __future__ import annotations

from typing import Any

import torch

from mobilevlm_mini.chat import IGNORE
from mobilevlm_mini.exercises._checking import NotYet, _call, _close, _number, _tensor, checker
from mobilevlm_mini.language import count_parameters, preset
from mobilevlm_mini.projectors import build_projector

# bytes per parameter of AdamW training: (weights, gradients, optimizer states); mixed precision keeps an fp32 master
# copy of the weights beside AdamW's two fp32 moments (the ZeRO paper's 2 + 2 + 12)
PER_PARAMETER = {"fp32": (4, 4, 8), "bf16": (2, 2, 12)}


def _combined(gradients: list[torch.Tensor], tokens: list[int]) -> torch.Tensor:
    total = sum(tokens)
    return sum(g * (t / total) for g, t in zip(gradients, tokens, strict=True))


@checker
def check_13_exercise_1(combine: Any) -> str:
    """Lesson 13, exercise 1: combine the workers' gradients (each the mean over its own labelled tokens) into the
    gradient of the whole batch, on hidden cases."""
    generator = torch.Generator().manual_seed(13)
    for tokens in ([3, 5, 8], [10, 10], [1, 30, 2, 7], [6]):
        gradients = [torch.randn(5, generator=generator) for _ in tokens]
        copies = [g.clone() for g in gradients]
        got = _call(combine, "combine", copies, list(tokens))
        if not isinstance(got, torch.Tensor) or got.shape != gradients[0].shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else ""
            raise NotYet(f"`combine` should return one tensor shaped like each worker's gradient "
                         f"{tuple(gradients[0].shape)}, got {type(got).__name__}{shape}")
        got = got.detach().float()
        if torch.allclose(got, _combined(gradients, tokens), atol=1e-6):
            continue
        if torch.allclose(got, torch.stack(gradients).mean(0), atol=1e-6):
            hint = ("that is the plain mean of the workers' gradients, right only when every worker holds as many "
                    "labelled tokens; weight each by its share")
        elif torch.allclose(got, sum(g * t for g, t in zip(gradients, tokens, strict=True)), atol=1e-5):
            hint = "each gradient is weighted by its token count, but the weights do not add up to 1"
        elif torch.allclose(got, sum(gradients), atol=1e-6):
            hint = "that is the sum of the workers' gradients; each one is a mean over its own tokens"
        else:
            hint = "write the whole batch's mean loss as a weighted sum of the workers' mean losses, then differentiate"
        raise NotYet(f"combine(gradients, tokens={tokens}) is not the gradient of the whole batch: {hint}")
    return "gradients combine with weights T_k / T; DDP's plain mean matches only when the T_k are equal"


def _model_state(n_params: float, stage: int, n_gpus: int, precision: str) -> float:
    weights, gradients, optimizer = PER_PARAMETER[precision]
    if stage >= 1:
        optimizer /= n_gpus
    if stage >= 2:
        gradients /= n_gpus
    if stage >= 3:
        weights /= n_gpus
    return n_params * (weights + gradients + optimizer)


def mobilevlm_3b_trainable() -> int:
    """Parameters that MobileVLM-3B's stage 2 trains: MobileLLaMA-2.7B and the LDP projector (1024 -> 2560)."""
    with torch.device("meta"):
        projector = build_projector("ldp", 1024, 2560)
    return count_parameters(preset("mobilellama-2.7b")) + sum(p.numel() for p in projector.parameters())


@checker
def check_13_exercise_2(model_state_bytes: Any, per_gpu_3b: Any) -> str:
    """Lesson 13, exercise 2: bytes of weights, gradients and AdamW states per GPU, for ZeRO stages 0-3, in fp32 and in
    bf16 mixed precision, on hidden cases; then MobileVLM-3B's stage 2 under ZeRO-3 on 8 GPUs."""
    for precision in ("fp32", "bf16"):
        for n_params, n_gpus in ((1_000_000, 8), (3_000_000_000, 4), (1_234_567, 1)):
            for stage in range(4):
                got = _number(_call(model_state_bytes, "model_state_bytes", n_params, stage, n_gpus, precision),
                              f"model_state_bytes({n_params}, {stage}, {n_gpus}, {precision!r})")
                want = _model_state(n_params, stage, n_gpus, precision)
                if _close(got, want, 1e-6):
                    continue
                call = f"model_state_bytes({n_params:_}, stage={stage}, n_gpus={n_gpus}, precision={precision!r})"
                if precision == "bf16" and _close(got, _model_state(n_params, stage, n_gpus, "fp32"), 1e-6):
                    hint = ("in bf16 mixed precision the weights and gradients take 2 bytes each, and AdamW keeps an "
                            "fp32 master copy of the weights beside its two moments")
                elif stage == 0 and _close(got, n_params * sum(PER_PARAMETER[precision][1:]), 1e-6):
                    hint = "stage 0 (plain DDP) also keeps the weights on every GPU"
                elif stage > 0 and _close(got, _model_state(n_params, stage - 1, n_gpus, precision), 1e-6):
                    hint = f"stage {stage} shards one more thing than stage {stage - 1}"
                elif stage > 0 and stage < 3 and _close(got, _model_state(n_params, 3, n_gpus, precision), 1e-6):
                    hint = f"only stage 3 shards everything; stage {stage} keeps some states whole on every GPU"
                else:
                    hint = "add weights, gradients and optimizer states; divide by n_gpus only what this stage shards"
                raise NotYet(f"{call} is not right: {hint}")
    want = _model_state(mobilevlm_3b_trainable(), 3, 8, "bf16")
    got = _number(per_gpu_3b, "per_gpu_3b")
    if not _close(got, want, 1e-3):
        hint = ("that is in GiB; give bytes" if _close(got * 2**30, want, 1e-3) else
                "that is in GB; give bytes" if _close(got * 1e9, want, 1e-3) else
                "count MobileLLaMA-2.7B and its LDP projector (1024 -> 2560), both trained in stage 2, in bf16 "
                "mixed precision")
        raise NotYet(f"`per_gpu_3b` is not MobileVLM-3B's model state per GPU under ZeRO-3 on 8 GPUs: {hint}")
    return "each stage shards one more kind of state; why the 3B recipe chose ZeRO-3 is discussed in the solution"


def _flat_gradient(model: torch.nn.Module, batch: tuple, weight: float = 1.0) -> torch.Tensor:
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.grad = None
    (model(*batch, labelled_only=True).loss * weight).backward()
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in trainable])
    for p in trainable:
        p.grad = None
    return flat


def _labelled(batch: tuple) -> int:
    return int((batch[3][:, 1:] != IGNORE).sum())


@checker
def check_13_exercise_3(accumulated: Any, model: Any, data: Any, rows: Any) -> str:
    """Lesson 13, exercise 3: the gradient of four micro-batches accumulated on one model equals the whole batch's."""
    from mobilevlm_mini.train import conversation_batch

    got = _tensor(accumulated, "accumulated").flatten().float()
    rows = _tensor(rows, "rows")
    full = _flat_gradient(model, conversation_batch(model, data, rows))
    if got.shape != full.shape:
        raise NotYet(f"`accumulated` should hold one value per trainable parameter ({full.numel():,}), flattened in "
                     f"model.parameters() order, got {got.numel():,}")
    scale = full.abs().max().item()
    if torch.allclose(got, full, rtol=1e-4, atol=1e-5 * scale):
        return (f"{len(rows)} rows in micro-batches give the whole batch's gradient: accumulation is data "
                "parallelism in time")
    micro = [conversation_batch(model, data, part) for part in rows.chunk(4)]
    plain = sum(_flat_gradient(model, batch) for batch in micro)
    if torch.allclose(got, plain / len(micro), rtol=1e-4, atol=1e-5 * scale):
        hint = ("that is the plain mean of the micro-batches' gradients; scale each micro-batch's loss by its share "
                "of the labelled tokens")
    elif torch.allclose(got, plain, rtol=1e-4, atol=1e-5 * scale):
        hint = "the micro-batches' gradients were summed as they are; each loss is a mean over its own tokens"
    elif torch.allclose(got, _flat_gradient(model, micro[-1]), rtol=1e-4, atol=1e-5 * scale):
        hint = ("that is the last micro-batch's gradient alone: backward() adds into .grad, so zero the gradients "
                "once before the loop, not inside it")
    else:
        hint = ("backpropagate each micro-batch's loss times (its labelled tokens / the batch's), without zeroing in "
                "between")
    raise NotYet(f"`accumulated` is not the gradient of the whole batch of {len(rows)} rows: {hint}")


@checker
def check_13_exercise_4(ring_allreduce_bytes: Any, per_step_bytes: Any) -> str:
    """Lesson 13, exercise 4: bytes each worker sends in a ring all-reduce, on hidden cases; then MobileVLM-1.7B's
    stage-2 gradients in bf16 on 8 GPUs."""
    for n_values, bytes_per_value, workers in ((1000, 4, 2), (1000, 2, 8), (123_456, 4, 3), (10, 4, 1)):
        got = _number(_call(ring_allreduce_bytes, "ring_allreduce_bytes", n_values, bytes_per_value, workers),
                      "ring_allreduce_bytes(...)")
        want = 2 * (workers - 1) / workers * n_values * bytes_per_value
        if _close(got, want, 1e-9) or (want == 0 and got == 0):
            continue
        size = n_values * bytes_per_value
        if workers > 1 and _close(got, want / 2, 1e-9):
            hint = "that is one phase; an all-reduce is a reduce-scatter and then an all-gather"
        elif _close(got, 2 * size, 1e-9) or _close(got, size, 1e-9):
            hint = "in a ring each worker passes on only 1/p of the data per step, for p - 1 steps per phase"
        elif _close(got, (workers - 1) * size, 1e-9) or _close(got, 2 * (workers - 1) * size, 1e-9):
            hint = "that sends the whole tensor at every step; a ring sends chunks of 1/p of it"
        else:
            hint = "two phases (reduce-scatter, all-gather), each p - 1 steps of one chunk of n / p values"
        raise NotYet(f"ring_allreduce_bytes({n_values:_}, {bytes_per_value}, {workers}) is not right: {hint}")
    with torch.device("meta"):
        projector = build_projector("ldp", 1024, 2048)
    trained = count_parameters(preset("mobilellama-1.4b")) + sum(p.numel() for p in projector.parameters())
    want = 2 * 7 / 8 * trained * 2
    got = _number(per_step_bytes, "per_step_bytes")
    if not _close(got, want, 1e-3):
        hint = ("4 bytes a value is fp32; MobileVLM trains in bf16" if _close(got, 2 * want, 1e-3) else
                "that counts the frozen ViT too; only trained parameters have gradients" if got > want else
                "count the gradients of everything stage 2 trains: MobileLLaMA-1.4B and the LDP projector")
        raise NotYet(f"`per_step_bytes` is not what each of 8 GPUs sends per step of MobileVLM-1.7B's stage 2: {hint}")
    return (f"each GPU sends {got / 1e9:.1f} GB a step, almost twice the gradients, however many GPUs there are: "
            "what that costs in time is discussed in the solution")
