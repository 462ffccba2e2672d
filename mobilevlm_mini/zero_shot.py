"""Using a dual encoder as it is: image -> caption retrieval and zero-shot classification (lesson 04).

No training here: a prompt per class ("a large red circle") is embedded once, and each image takes the
class whose prompt lies nearest to it, as CLIP classifies ImageNet with "a photo of a {label}".

Public API
- `retrieval_accuracy(model, images, ids)`: how often an image's own caption scores highest.
- `zero_shot_predict(model, images, prompts)`, `largest_object_prompts(template)`,
  `zero_shot_largest(model, dataset)`: "which colour and shape is the largest object?" with no labels.
"""

from __future__ import annotations

import torch

from mobilevlm_mini.contrastive import ContrastiveModel, encode_texts
from mobilevlm_mini.data import COLOURS, SHAPES, images_to_tensor


@torch.no_grad()
def _embed_images(model: ContrastiveModel, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    images = images.float() / 255 if images.dtype == torch.uint8 else images
    return torch.cat([model.encode_images(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def retrieval_accuracy(model: ContrastiveModel, images: torch.Tensor, ids: torch.Tensor) -> float:
    """Image -> text top-1: how often an image's own caption scores highest among all N captions."""
    similarity = _embed_images(model, images) @ model.encode_texts(ids).T  # (N, N)
    return (similarity.argmax(dim=1) == torch.arange(len(ids))).float().mean().item()


@torch.no_grad()
def zero_shot_predict(model: ContrastiveModel, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """Index of the best-matching prompt for each image: (N,) long."""
    text = model.encode_texts(encode_texts(prompts, model.config.text.max_len))  # (K, E)
    return (_embed_images(model, images) @ text.T).argmax(dim=1)


def largest_object_prompts(template: str = "a large {colour} {shape}") -> tuple[list[str], list[tuple[str, str]]]:
    """One prompt per (colour, shape) class, and the classes in the same order."""
    classes = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    return [template.format(colour=c, shape=s) for c, s in classes], classes


def zero_shot_largest(model: ContrastiveModel, dataset, template: str = "a large {colour} {shape}") -> dict:
    """Zero-shot 'which colour-and-shape is the largest object?' on images with exactly one large object."""
    keep = [i for i, objects in enumerate(dataset["objects"]) if sum(o["size"] == "large" for o in objects) == 1]
    subset = dataset.select(keep)
    prompts, classes = largest_object_prompts(template)
    truth = torch.tensor([classes.index(next((o["colour"], o["shape"]) for o in objs if o["size"] == "large"))
                          for objs in subset["objects"]])
    predicted = zero_shot_predict(model, images_to_tensor(subset["image"]), prompts)
    return {"accuracy": (predicted == truth).float().mean().item(), "n": len(keep), "predicted": predicted,
            "truth": truth}
