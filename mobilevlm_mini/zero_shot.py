"""Scoring a dual encoder: image -> caption retrieval, zero-shot classification and a linear probe (lesson 04).

Retrieval and zero-shot train nothing: a prompt per class ("a large red circle") is embedded once, and
each image takes the class whose prompt lies nearest to it, as CLIP classifies ImageNet with "a photo
of a {label}". The linear probe is CLIP's other score of an image encoder: one linear layer trained,
with labels, on the frozen image embeddings, which tells what the embeddings hold whatever the prompts say.

Public API
- `embed_images(model, images)`: unit image embeddings, in batches.
- `retrieval_accuracy(model, images, ids)`: how often an image's own caption scores highest.
- `zero_shot_predict(model, images, prompts)`, `largest_object_prompts(template)`,
  `zero_shot_largest(model, dataset)`: "which colour and shape is the largest object?" with no labels.
- `one_large(dataset)`, `largest_object_labels(dataset)`: the scenes where "the large object" names one
  thing, and its class; `linear_probe(x_train, y_train, x_test, classes)`, `linear_probe_largest(model,
  train, test)`: the same question answered by a linear probe on the image embeddings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini.contrastive import ContrastiveModel, encode_texts
from mobilevlm_mini.data import COLOURS, SHAPES, images_to_tensor, images_to_uint8

if TYPE_CHECKING:  # datasets is imported where a split is drawn or loaded, not here
    from datasets import Dataset


@torch.no_grad()
def embed_images(model: ContrastiveModel, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Unit image embeddings (N, E) of images (N, 3, H, W), uint8 or float in [0, 1], `batch_size` at a time."""
    images = images.float() / 255 if images.dtype == torch.uint8 else images
    return torch.cat([model.encode_images(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def retrieval_accuracy(model: ContrastiveModel, images: torch.Tensor, ids: torch.Tensor) -> float:
    """Image -> text top-1: how often an image's own caption scores highest among all N captions."""
    similarity = embed_images(model, images) @ model.encode_texts(ids).T  # (N, N)
    return (similarity.argmax(dim=1) == torch.arange(len(ids))).float().mean().item()


@torch.no_grad()
def zero_shot_predict(model: ContrastiveModel, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """Index of the best-matching prompt for each image: (N,) long."""
    text = model.encode_texts(encode_texts(prompts, model.config.text.max_len))  # (K, E)
    return (embed_images(model, images) @ text.T).argmax(dim=1)


def largest_object_prompts(template: str = "a large {colour} {shape}") -> tuple[list[str], list[tuple[str, str]]]:
    """One prompt per (colour, shape) class, and the classes in the same order."""
    classes = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    return [template.format(colour=c, shape=s) for c, s in classes], classes


def one_large(dataset: Dataset) -> Dataset:
    """The scenes with exactly one large object, in order: the only ones where "the large object" names one thing."""
    return dataset.select([i for i, objects in enumerate(dataset["objects"])
                           if sum(o["size"] == "large" for o in objects) == 1])


def largest_object_labels(dataset: Dataset) -> torch.Tensor:
    """(N,) long: each scene's large object as an index into `largest_object_prompts()`'s classes.

    Every scene must hold exactly one large object: pass `one_large(dataset)`.
    """
    classes = largest_object_prompts()[1]
    return torch.tensor([classes.index(next((o["colour"], o["shape"]) for o in objects if o["size"] == "large"))
                         for objects in dataset["objects"]])


def zero_shot_largest(model: ContrastiveModel, dataset: Dataset, template: str = "a large {colour} {shape}") -> dict:
    """Zero-shot 'which colour-and-shape is the largest object?' on images with exactly one large object.

    Returns {"accuracy", "n": images scored, "predicted", "truth": (n,) class indices}.
    """
    subset = one_large(dataset)
    prompts, _ = largest_object_prompts(template)
    truth = largest_object_labels(subset)
    predicted = zero_shot_predict(model, images_to_tensor(subset["image"]), prompts)
    return {"accuracy": (predicted == truth).float().mean().item(), "n": len(subset), "predicted": predicted,
            "truth": truth}


def linear_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, classes: int,
                 steps: int = 2000, lr: float = 3e-3, seed: int = 0) -> torch.Tensor:
    """Train one linear layer on frozen features and return its predicted class for each test row: (M,) long.

    x_train (N, D) with labels y_train (N,); x_test (M, D). The features are standardised with the training
    mean and spread, and the layer is trained full batch (every training row each step) with Adam for
    `steps` steps from weights seeded by `seed`: the same inputs give the same predictions.
    Labels (N, H) train H probes at once (one per fact, e.g. per grid cell), and the predictions are (M, H).
    """
    heads = 1 if y_train.dim() == 1 else y_train.shape[1]
    mean, std = x_train.mean(0), x_train.std(0)  # standardised inputs: Adam converges in fewer steps
    std = torch.where(std > 0, std, 1.0)  # a feature constant over the training rows is only centred
    torch.manual_seed(seed)  # the probe's starting weights
    probe = nn.Linear(x_train.shape[1], heads * classes)  # one weight vector (a learned "prompt") per class and head
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(steps):
        logits = probe((x_train - mean) / std).reshape(-1, classes)  # (N * H, classes)
        loss = F.cross_entropy(logits, y_train.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = probe((x_test - mean) / std).reshape(len(x_test), heads, classes).argmax(dim=-1)  # (M, H)
    return predicted[:, 0] if y_train.dim() == 1 else predicted


def linear_probe_largest(model: ContrastiveModel, train: Dataset, test: Dataset, steps: int = 2000) -> dict:
    """`zero_shot_largest`'s question answered by a linear probe on the model's image embeddings.

    The probe learns from `train`'s scenes with one large object and is scored on `test`'s, the images
    `zero_shot_largest(model, test)` scores, in the same order. Returns {"accuracy", "n", "n_train",
    "predicted", "truth"}.
    """
    train, test = one_large(train), one_large(test)
    x_train = embed_images(model, images_to_uint8(train["image"]))  # (N, E): what zero-shot compares with prompts
    x_test = embed_images(model, images_to_uint8(test["image"]))
    truth = largest_object_labels(test)
    predicted = linear_probe(x_train, largest_object_labels(train), x_test, len(largest_object_prompts()[1]),
                             steps=steps)
    return {"accuracy": (predicted == truth).float().mean().item(), "n": len(test), "n_train": len(train),
            "predicted": predicted, "truth": truth}
