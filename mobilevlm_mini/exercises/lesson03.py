"""Checkers for lesson 03, cross-attention and VLM families."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mobilevlm_mini.attention import GatedCrossAttentionBlock, MultiHeadAttention, causal_mask
from mobilevlm_mini.exercises._checking import NotYet, _call, _close, _given, _number, _tensor, checker


def _text_sees_image(image_after: int, n_img: int, n_text: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """For the image inserted after text token `image_after`: the (N, N) and the (text, image) may-see matrices."""
    is_img = torch.tensor([False] * (image_after + 1) + [True] * n_img + [False] * (n_text - image_after - 1))
    full = causal_mask(len(is_img)) & ~is_img[:, None] & is_img[None, :]  # text query -> image key
    return full, full[~is_img][:, is_img]


@checker
def check_03_exercise_1(allowed_after_user: Any, allowed_at_end: Any) -> str:
    """Lesson 03, exercise 1: which (text query, image key) pairs the causal mask allows, for both image placements."""
    for name, value, after, where in (("allowed_after_user", allowed_after_user, 0, "right after 'USER:'"),
                                      ("allowed_at_end", allowed_at_end, 7, "at the end")):
        got = _tensor(value, name)
        if got.dtype != torch.bool:
            if not ((got == 0) | (got == 1)).all():
                raise NotYet(f"`{name}` should be boolean: True where a text query may see an image key")
            got = got.bool()
        if got.ndim == 2 and got.shape[0] == got.shape[1] and got.shape[0] > 8:
            want = _text_sees_image(after, got.shape[0] - 8)[0]
        elif got.ndim == 2 and got.shape[0] == 8:
            want = _text_sees_image(after, got.shape[1])[1]
        else:
            raise NotYet(f"`{name}` has shape {tuple(got.shape)}: use the whole sequence (N x N, with the 8 words of "
                         "'USER: what colour is the flag ? ASSISTANT:' and the image tokens) or text queries x image "
                         "keys (8 x N_img)")
        if not torch.equal(got, want):
            hint = ("some pairs you allow are not (text query, image key) pairs the causal mask lets through"
                    if (got & ~want).any() else "some (text query, image key) pairs that the causal mask lets through "
                                                "are missing")
            raise NotYet(f"image {where}: {int((got != want).sum())} entries of `{name}` are wrong; {hint}")
    return "only text after the image can see it; why the image goes before the question is discussed in the solution"


@checker
def check_03_exercise_2(student: Any, teacher: Any) -> str:
    """Lesson 03, exercise 2: only the student's two gates were trained, and they opened towards the teacher's."""
    for name, block in (("student", student), ("teacher", teacher)):
        if not isinstance(_given(block, name), GatedCrossAttentionBlock):
            raise NotYet(f"`{name}` should be a GatedCrossAttentionBlock, got {type(block).__name__}")
    if student is teacher:
        raise NotYet("the teacher must be a copy of the student (copy.deepcopy), not the same block")
    if not (teacher.attn_gate.detach() == 1).all() or not (teacher.mlp_gate.detach() == 1).all():
        raise NotYet("set both of the teacher's gates, attn_gate and mlp_gate, to 1.0")
    theirs = dict(teacher.named_parameters())
    for name, weight in student.named_parameters():
        if "gate" not in name and (weight.shape != theirs[name].shape or not torch.equal(weight, theirs[name])):
            raise NotYet(f"the student's `{name}` differs from the teacher's: copy the student before training and "
                         "give the optimizer only the two gates")
    gates = student.attn_gate.detach().tanh().item(), student.mlp_gate.detach().tanh().item()
    if gates == (0.0, 0.0):
        raise NotYet("the student's gates are still at 0: train them")
    if min(gates) < 0.5:
        raise NotYet(f"the student's gates have opened only to tanh = {gates[0]:.2f} and {gates[1]:.2f}: train longer, "
                     "or check the loss (mean squared error to the teacher's output) and the learning rate (0.05)")
    return ("only the gates moved: from 0 (the frozen LM unchanged) towards the teacher's tanh(1) (the plot is not "
            "checked)")


@checker
def check_03_exercise_3(layer_flops: Any, speedup: Any) -> str:
    """Lesson 03, exercise 3: one MobileLLaMA 1.4B layer's prefill FLOPs (attention scores, linear layers) and LDP's
    speed-up."""
    D = 2048
    for n in (1, 100, 208, 640, 1000):
        result = _call(layer_flops, "layer_flops", n)
        try:
            scores, linear = (float(v) for v in result)
        except (TypeError, ValueError):
            raise NotYet("`layer_flops(n)` should return two numbers: (attention-score FLOPs, linear-layer "
                         "FLOPs)") from None
        if not _close(scores, 4 * n * n * D, 1e-6):
            raise NotYet(f"the attention-score FLOPs for N = {n} tokens do not match 4 N^2 D with D = 2048")
        if not _close(linear, 24 * n * D * D, 1e-6):
            raise NotYet(f"the linear-layer FLOPs for N = {n} tokens do not match 24 N D^2 with D = 2048")

    def prefill(n_img: int) -> float:
        n = n_img + 64
        return 4 * n * n * D + 24 * n * D * D

    s, want = _number(speedup, "speedup"), prefill(576) / prefill(144)
    if not _close(s, want):
        if _close(s, 1 / want):
            hint = "turn it around: the FLOPs with 576 image tokens divided by those with 144"
        elif _close(s, 4.0):
            hint = "576 / 144 counts the image tokens only: add the 64 text tokens, and both terms"
        else:
            hint = "compare the total of both terms, with N = N_img + 64 text tokens, for 576 and for 144 image tokens"
        raise NotYet(f"`speedup` is not right: {hint}")
    return "the FLOP formulas and the speed-up are right: compare the speed-up with the 4x cut in image tokens"


@checker
def check_03_exercise_4(resampler: Any, latents: Any) -> str:
    """Lesson 03, exercise 4: learned latents cross-attend to any number of image tokens and always give 8 tokens."""
    if not isinstance(_given(resampler, "resampler"), MultiHeadAttention):
        raise NotYet(f"`resampler` should be a MultiHeadAttention, got {type(resampler).__name__}")
    if resampler.kv.in_features != 48 or resampler.q.in_features != 64:
        raise NotYet("the latents have width 64 and the image tokens width 48: build MultiHeadAttention(64, 4, "
                     "context_dim=48)")
    if not isinstance(_given(latents, "latents"), nn.Parameter):
        raise NotYet("`latents` should be learned: wrap the tensor in nn.Parameter")
    if latents.shape != (1, 8, 64):
        raise NotYet(f"`latents` has shape {tuple(latents.shape)}, expected 8 latent queries of width 64 for one "
                     "image: (1, 8, 64)")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n_img in (256, 576, 37):
            image_tokens = torch.randn(1, n_img, 48, generator=generator)  # (B, N_img, 48)
            out, weights = _call(resampler, "resampler", latents, context=image_tokens, return_weights=True)
            if out.shape != (1, 8, 64):
                raise NotYet(f"for {n_img} image tokens the resampler gives shape {tuple(out.shape)}, expected (1, 8, "
                             "64)")
            if not torch.allclose(weights.sum(dim=-1), torch.ones(weights.shape[:-1]), atol=1e-5):
                raise NotYet("each latent's attention weights over the image tokens should sum to 1")
    return "8 output tokens whatever the number of image tokens: the token budget is fixed"
