"""Lesson 13's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import pytest
import torch

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.chat import IGNORE
from mobilevlm_mini.config import VLMConfig
from mobilevlm_mini.exercises.lesson13 import mobilevlm_3b_trainable
from mobilevlm_mini.language import count_parameters, preset
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.projectors import build_projector
from mobilevlm_mini.train import PreparedSplit, conversation_batch

from .helpers import fails, passes, raises_not_implemented

# ---------------------------------------------------------------- exercise 1


def combine(gradients, tokens):  # the solution's
    total = sum(tokens)
    return sum(g * (t / total) for g, t in zip(gradients, tokens, strict=True))


def test_13_exercise_1(capsys):
    passes(capsys, ex.check_13_exercise_1(combine))
    fails(capsys, ex.check_13_exercise_1(lambda gradients, tokens: torch.stack(gradients).mean(0)), "plain mean")
    unnormalised = lambda gradients, tokens: sum(g * t for g, t in zip(gradients, tokens, strict=True))  # noqa: E731
    fails(capsys, ex.check_13_exercise_1(unnormalised), "do not add up to 1")
    fails(capsys, ex.check_13_exercise_1(lambda gradients, tokens: sum(gradients)), "sum of the workers")
    fails(capsys, ex.check_13_exercise_1(lambda gradients, tokens: gradients), "should return one tensor")
    fails(capsys, ex.check_13_exercise_1(lambda gradients, tokens: None), "returned None")
    fails(capsys, ex.check_13_exercise_1(raises_not_implemented), "NotImplementedError")


# ---------------------------------------------------------------- exercise 2

BYTES = {"fp32": (4, 4, 8), "bf16": (2, 2, 12)}


def model_state_bytes(n_params, stage, n_gpus, precision="bf16"):  # the solution's
    weights, gradients, optimizer = BYTES[precision]
    return n_params * (weights / (n_gpus if stage >= 3 else 1) + gradients / (n_gpus if stage >= 2 else 1)
                       + optimizer / (n_gpus if stage >= 1 else 1))


def test_13_exercise_2(capsys):
    with torch.device("meta"):
        projector = build_projector("ldp", 1024, 2560)
    trained = count_parameters(preset("mobilellama-2.7b")) + sum(p.numel() for p in projector.parameters())
    assert trained == mobilevlm_3b_trainable()
    per_gpu = model_state_bytes(trained, 3, 8)
    passes(capsys, ex.check_13_exercise_2(model_state_bytes, per_gpu))
    fails(capsys, ex.check_13_exercise_2(lambda n, s, g, p: model_state_bytes(n, s, g, "fp32"), per_gpu),
          "fp32 master copy")
    fails(capsys, ex.check_13_exercise_2(lambda n, s, g, p: model_state_bytes(n, 0, g, p), per_gpu),
          "stage 1 shards one more thing than stage 0")
    fails(capsys, ex.check_13_exercise_2(lambda n, s, g, p: model_state_bytes(n, 3 if s >= 2 else s, g, p), per_gpu),
          "only stage 3 shards everything")
    fails(capsys, ex.check_13_exercise_2(lambda n, s, g, p: n * sum(BYTES[p][1:]) if s == 0 else 0, per_gpu),
          "also keeps the weights")
    fails(capsys, ex.check_13_exercise_2(model_state_bytes, per_gpu / 2**30), "in GiB")
    fails(capsys, ex.check_13_exercise_2(model_state_bytes, model_state_bytes(trained, 2, 8)), "`per_gpu_3b`",
          hidden=(f"{per_gpu:,.0f}", str(int(per_gpu))))
    fails(capsys, ex.check_13_exercise_2(raises_not_implemented, None), "NotImplementedError")


# ---------------------------------------------------------------- exercise 3


@pytest.fixture(scope="module")
def split():
    """An untrained VLM whose LLM learns (as in stage 2) and 8 images with conversations of 1 to 3 turns."""
    torch.manual_seed(0)
    model = MobileVLM(VLMConfig()).train()
    for p in model.part_parameters("vit") + model.part_parameters("projector"):
        p.requires_grad_(False)
    turns = [("colour", "what colour is the circle ?", "red"), ("count", "how many squares are there ?", "two"),
             ("exists", "is there a red cross ?", "no")]
    vit = model.config.vit
    features = torch.randn(8, vit.grid**2, vit.dim)
    data = PreparedSplit(features, [""] * 8, [turns[: 1 + i % 3] for i in range(8)], None)
    return model, data, torch.arange(8)


def labelled(batch):
    return int((batch[3][:, 1:] != IGNORE).sum())


def accumulate(model, data, rows, weighting="tokens", zero_inside=False):
    """The solution's loop (weighting="tokens"), and typical slips."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    total = labelled(conversation_batch(model, data, rows))
    for p in trainable:
        p.grad = None
    for part in rows.chunk(4):
        if zero_inside:
            for p in trainable:
                p.grad = None
        batch = conversation_batch(model, data, part)
        scale = {"tokens": labelled(batch) / total, "mean": 1 / 4, "sum": 1.0}[weighting]
        (model(*batch, labelled_only=True).loss * scale).backward()
    flat = torch.cat([p.grad.flatten() for p in trainable])
    for p in trainable:
        p.grad = None
    return flat


def test_13_exercise_3(capsys, split):
    model, data, rows = split
    passes(capsys, ex.check_13_exercise_3(accumulate(model, data, rows), model, data, rows))
    fails(capsys, ex.check_13_exercise_3(accumulate(model, data, rows, "mean"), model, data, rows), "plain mean")
    fails(capsys, ex.check_13_exercise_3(accumulate(model, data, rows, "sum"), model, data, rows), "summed as they are")
    fails(capsys, ex.check_13_exercise_3(accumulate(model, data, rows, "sum", zero_inside=True), model, data, rows),
          "zero the gradients once")
    fails(capsys, ex.check_13_exercise_3(accumulate(model, data, rows)[:10], model, data, rows), "one value per")
    fails(capsys, ex.check_13_exercise_3(None, model, data, rows), "`accumulated` is still None")
    assert all(p.grad is None for p in model.parameters())  # the checker leaves no gradients behind


# ---------------------------------------------------------------- exercise 4


def ring_allreduce_bytes(n_values, bytes_per_value, workers):  # the solution's
    return 2 * (workers - 1) / workers * n_values * bytes_per_value


def test_13_exercise_4(capsys):
    with torch.device("meta"):
        projector = build_projector("ldp", 1024, 2048)
    trained = count_parameters(preset("mobilellama-1.4b")) + sum(p.numel() for p in projector.parameters())
    per_step = ring_allreduce_bytes(trained, 2, 8)
    passes(capsys, ex.check_13_exercise_4(ring_allreduce_bytes, per_step))
    fails(capsys, ex.check_13_exercise_4(lambda n, b, p: (p - 1) / p * n * b, per_step), "one phase")
    fails(capsys, ex.check_13_exercise_4(lambda n, b, p: 2 * (p - 1) * n * b, per_step), "1/p")
    fails(capsys, ex.check_13_exercise_4(lambda n, b, p: 2 * n * b, per_step), "1/p of the data")
    fails(capsys, ex.check_13_exercise_4(ring_allreduce_bytes, ring_allreduce_bytes(trained, 4, 8)), "fp32")
    fails(capsys, ex.check_13_exercise_4(ring_allreduce_bytes, per_step / 2), "`per_step_bytes`",
          hidden=(f"{per_step:,.0f}", f"{per_step / 1e9:.1f}"))
    fails(capsys, ex.check_13_exercise_4(raises_not_implemented, None), "NotImplementedError")
