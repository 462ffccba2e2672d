"""Measuring a module rather than running it: parameters, FLOPs, and what each projector output reads (lessons 05, 08).

- `trainable_parameters(module)`: the numbers an optimizer would change.
- `count_flops(module, x)`: FLOPs of one forward pass, from PyTorch's counter; `projector_cost(name, ...)`: tokens,
  parameters and FLOPs of a projector at given sizes; `cost_of(projector, num_tokens)`: the same for one already
  built (e.g. a `projectors.QFormer`, which the registry does not hold).
- `influence_map(projector, tokens, index)`: how strongly each input token moves one output token (a Jacobian norm).
- `cell_facts(dataset)`, `probe_visual_tokens(model, train, test)`: what a trained projector's frozen output tokens
  still hold (each cell's shape and colour, the number of objects), read by linear probes (lesson 08: lost or not yet
  learned?).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from mobilevlm_mini.data import COLOURS, GRID, SHAPES, scene_objects
from mobilevlm_mini.projectors import Projector, build_projector
from mobilevlm_mini.zero_shot import linear_probe


def trainable_parameters(module: nn.Module) -> int:
    """Number of trainable numbers in a module (requires_grad); `language.count_parameters(config)` counts from a
    config."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)  # PyTorch's own formula, for the CPU kernel it does not map


def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass on x, from PyTorch's counter (matmuls, convs, attention; not elementwise ops)."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        module(x)
    return counter.get_total_flops()


def projector_cost(name: str, vision_dim: int, llm_dim: int, num_tokens: int, **options) -> dict[str, int | str]:
    """Tokens out, parameters and FLOPs (one image) of a projector at the given sizes."""
    with torch.device("meta"):  # shapes without values: all that counting needs, and nothing to allocate
        projector = build_projector(name, vision_dim, llm_dim, **options)
    return cost_of(projector, num_tokens)


def cost_of(projector: Projector, num_tokens: int) -> dict[str, int | str]:
    """Tokens out, parameters and FLOPs (one image of `num_tokens` tokens) of a built projector.

    Built under `with torch.device("meta"):` it has shapes but no values, which is all counting needs: even a
    100M-parameter Q-Former is then measured in a fraction of a second.
    """
    x = torch.zeros(1, num_tokens, projector.vision_dim, device=next(projector.parameters()).device)
    return {
        "projector": projector.name,
        "tokens_in": num_tokens,
        "tokens_out": projector.num_tokens_out(num_tokens),
        "params": trainable_parameters(projector),
        "flops": count_flops(projector, x),
    }


def influence_map(projector: Projector, tokens: torch.Tensor, index: int) -> torch.Tensor:
    """How strongly each input token moves output token `index`: the norm of d out[index] / d tokens[n], shape (N,).

    tokens: (N, D_vision) for one image. Uses the full Jacobian, so no cancellation between channels.
    """
    n_out = projector.num_tokens_out(tokens.shape[0])
    if not 0 <= index < n_out:
        raise ValueError(f"index {index} is out of range: this projector returns {n_out} tokens (0..{n_out - 1})")

    def one_output(x: torch.Tensor) -> torch.Tensor:
        return projector(x[None])[0, index]  # (D_llm,)

    jacobian = torch.autograd.functional.jacobian(one_output, tokens, vectorize=True)  # (D_llm, N, D_vision)
    return jacobian.pow(2).sum(dim=(0, 2)).sqrt()  # (N,)


def cell_facts(dataset) -> dict[str, torch.Tensor]:
    """Each image's scene as class labels: "shape" and "colour" per grid cell (N, 9), 0 for an empty cell else
    1 + the index in SHAPES / COLOURS, and "count", the number of objects (N,)."""
    shape = torch.zeros(len(dataset), GRID * GRID, dtype=torch.long)  # (N, 9)
    colour, count = torch.zeros_like(shape), torch.zeros(len(dataset), dtype=torch.long)
    for i, listed in enumerate(dataset["objects"]):  # the column alone: no picture is decoded
        objects = scene_objects({"objects": listed})
        count[i] = len(objects)
        for obj in objects:
            shape[i, obj.row * GRID + obj.col] = 1 + SHAPES.index(obj.shape)
            colour[i, obj.row * GRID + obj.col] = 1 + list(COLOURS).index(obj.colour)
    return {"shape": shape, "colour": colour, "count": count}


@torch.no_grad()
def visual_tokens(model: nn.Module, features: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The model's visual tokens for frozen ViT features (N, N_patches, D_vision), flattened: (N, K * hidden)."""
    batches = range(0, len(features), batch_size)
    return torch.cat([model.project(features[i:i + batch_size]).flatten(1) for i in batches])


def probe_visual_tokens(model: nn.Module, train, test, steps: int = 300, tokens: str = "visual") -> dict[str, float]:
    """Linear probes on a trained model's visual tokens (frozen): trained on `train`'s images, scored on `test`'s
    (both `train.PreparedSplit`s). Returns the share of occupied test cells whose shape and colour the probes read
    right, and of test images whose object count they read right. A fact the probe reads but the VLM answers wrong
    is in the tokens but unused; a fact the probe cannot read either was lost before the LLM.
    tokens: "visual" (the projector's output) or "patch" (the ViT's patch tokens, the projector's input)."""
    if tokens not in ("visual", "patch"):
        raise ValueError(f"tokens must be 'visual' or 'patch', got {tokens!r}")
    if tokens == "visual":
        x_train, x_test = visual_tokens(model, train.features), visual_tokens(model, test.features)  # (N, K * hidden)
    else:
        x_train, x_test = train.features.flatten(1), test.features.flatten(1)  # (N, N_patches * D_vision)
    facts_train, facts_test = cell_facts(train.dataset), cell_facts(test.dataset)
    scores = {}
    for name, classes in (("shape", 1 + len(SHAPES)), ("colour", 1 + len(COLOURS))):
        truth = facts_test[name]  # (M, 9)
        predicted = linear_probe(x_train, facts_train[name], x_test, classes, steps=steps)  # (M, 9)
        occupied = truth > 0
        scores[name] = (predicted == truth)[occupied].float().mean().item()
    counts = facts_train["count"]
    predicted = linear_probe(x_train, counts, x_test, int(counts.max()) + 1, steps=steps)
    scores["count"] = (predicted == facts_test["count"]).float().mean().item()
    return scores
