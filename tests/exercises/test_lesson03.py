"""Lesson 03's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.attention import GatedCrossAttentionBlock, MultiHeadAttention, causal_mask

from .helpers import fails, passes


def _layouts(n_img: int = 64) -> dict:
    """The solution's (N, N) text-query-may-see-image-key matrices, and which positions are image tokens."""
    text = "USER: what colour is the flag ? ASSISTANT:".split()
    results = {}
    for name, after in (("after", 0), ("end", len(text) - 1)):
        kinds = ["text"] * (after + 1) + ["image"] * n_img + ["text"] * (len(text) - after - 1)
        is_img = torch.tensor([k == "image" for k in kinds])
        results[name] = causal_mask(len(kinds)) & ~is_img[:, None] & is_img[None, :], is_img
    return results


def test_03_exercise_1(capsys):
    (after, is_img_after), (end, is_img_end) = _layouts().values()
    passes(capsys, ex.check_03_exercise_1(after, end))
    compact_after, compact_end = after[~is_img_after][:, is_img_after], end[~is_img_end][:, is_img_end]  # (8, 64)
    passes(capsys, ex.check_03_exercise_1(compact_after, compact_end))
    (small_after, _), (small_end, _) = _layouts(16).values()
    passes(capsys, ex.check_03_exercise_1(small_after.int(), small_end))
    no_causal = ~is_img_after[:, None] & is_img_after[None, :]  # every text token sees the image, 'USER:' too
    fails(capsys, ex.check_03_exercise_1(no_causal, end), "right after 'USER:'", "not (text query, image key) pairs")
    fails(capsys, ex.check_03_exercise_1(after, compact_after), "at the end", "are wrong")
    fails(capsys, ex.check_03_exercise_1(compact_after & False, compact_end), "right after 'USER:'", "are missing")
    fails(capsys, ex.check_03_exercise_1(torch.ones(5, 3, dtype=torch.bool), end), "has shape (5, 3)")


def test_03_exercise_2(capsys):
    torch.manual_seed(0)
    student = GatedCrossAttentionBlock(64, 4, context_dim=48)  # the solution's
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        teacher.attn_gate.fill_(1.0)
        teacher.mlp_gate.fill_(1.0)
    untrained = copy.deepcopy(student)
    text, image = torch.randn(4, 9, 64), torch.randn(4, 64, 48)
    with torch.no_grad():
        target = teacher(text, image)
    everything = copy.deepcopy(student)
    for model, parameters in ((student, [student.attn_gate, student.mlp_gate]),
                              (everything, list(everything.parameters()))):
        optimizer = torch.optim.Adam(parameters, lr=0.05)
        for _ in range(40):  # quick mode's steps(150, 40)
            loss = F.mse_loss(model(text, image), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    passes(capsys, ex.check_03_exercise_2(student, teacher))
    fails(capsys, ex.check_03_exercise_2(untrained, teacher), "still at 0")
    fails(capsys, ex.check_03_exercise_2(everything, teacher), "differs from the teacher's", "only the two gates")
    fails(capsys, ex.check_03_exercise_2(student, untrained), "set both of the teacher's gates")
    fails(capsys, ex.check_03_exercise_2(student, student), "a copy of the student")


def test_03_exercise_3(capsys):
    D = 2048

    def layer_flops(n):  # the solution's
        return 4 * n * n * D, 24 * n * D * D

    total = {n_img: sum(layer_flops(n_img + 64)) for n_img in (576, 144)}
    speedup = total[576] / total[144]
    passes(capsys, ex.check_03_exercise_3(layer_flops, speedup))
    fails(capsys, ex.check_03_exercise_3(layer_flops, 4.0), "add the 64 text tokens", hidden=(f"{speedup:.1f}",))
    fails(capsys, ex.check_03_exercise_3(layer_flops, 1 / speedup), "turn it around")
    fails(capsys, ex.check_03_exercise_3(lambda n: (2 * n * n * D, 24 * n * D * D), speedup), "attention-score FLOPs")
    fails(capsys, ex.check_03_exercise_3(lambda n: 4 * n * n * D + 24 * n * D * D, speedup), "two numbers")


def test_03_exercise_4(capsys):
    latents = nn.Parameter(torch.randn(1, 8, 64))  # the solution's
    resampler = MultiHeadAttention(64, 4, context_dim=48)
    passes(capsys, ex.check_03_exercise_4(resampler, latents))
    fails(capsys, ex.check_03_exercise_4(resampler, latents.detach()), "nn.Parameter")
    fails(capsys, ex.check_03_exercise_4(MultiHeadAttention(64, 4), latents), "context_dim=48")
    fails(capsys, ex.check_03_exercise_4(resampler, nn.Parameter(torch.randn(8, 64))), "(1, 8, 64)")
