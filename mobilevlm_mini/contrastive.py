"""Contrastive pretraining: CLIP's softmax loss, SigLIP's sigmoid loss, a caption encoder (lesson 04).

An image encoder (vision.ViT) and a text encoder map matching image/caption pairs to nearby unit
vectors. CLIP scores every image against every caption in the batch and asks a softmax to pick the
right one, both ways; SigLIP asks an independent sigmoid "match or not?" of every pair.

Public API
- `clip_loss(img, txt, log_scale)`, `siglip_loss(img, txt, log_scale, bias, matches=None)`: the two losses;
  `ClipLoss` / `SigLipLoss`: the same with learnable temperature (and bias); `LOSSES` by name.
- `WORDS`, `encode_texts(texts, max_len)`: word-level token ids for captions and prompts.
- `TextConfig`, `TextEncoder`; `ContrastiveConfig`, `ContrastiveModel` (ViT + text encoder + loss).
- `PretrainConfig` (the whole recipe: model, data size, steps, batch, lr, seed) and
  `default_recipe(quick, loss)`: the course's recipe, smaller in quick mode.
- `prepare_pairs(dataset)`, `train_contrastive(recipe, ...)` -> (model, history) with a tqdm bar.
- `retrieval_accuracy`, `zero_shot_predict`, `largest_object_prompts`, `zero_shot_largest`.
- `TextTuningConfig`, `default_text_tuning(quick)`, `tuning_captions`, `tune_text(model, tuning, images, scenes)`:
  locked-image text tuning (LiT): the ViT frozen, the text side taught to name single objects.
- `pretrained_model(quick, loss, text_tuned=False)`: the course's dual encoder, and `pretrained_vit(quick=None)`:
  its ViT, frozen, for later lessons. They load <models_dir()>/<key>/{model.safetensors, config.json},
  where the key hashes the whole recipe (so quick-mode and full-mode encoders never mix), or train
  deterministically when missing; the text-tuned model is cached beside it (`tuned_path`), and its
  ViT is the same. `models_dir()` is <runtime.cache_dir()>/models.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini import runtime
from mobilevlm_mini.attention import Block
from mobilevlm_mini.checkpoint import CONFIG, WEIGHTS, config_to_dict, load_checkpoint, save_checkpoint, settings_digest
from mobilevlm_mini.data import (
    COLOURS,
    DATA_VERSION,
    SHAPES,
    SIZES,
    SceneObject,
    WorldConfig,
    caption,
    images_to_tensor,
    images_to_uint8,
    load_split,
    split_words,
    vocabulary,
)
from mobilevlm_mini.optim import OptimConfig, Optimizer
from mobilevlm_mini.vision import ViT, ViTConfig

# ---------------------------------------------------------------- losses


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over cosine similarities scaled by exp(log_scale); image i matches caption i.

    image_emb (B, E); text_emb (B + K, E): the first B captions match the images, K more (hard
    negatives) only compete on the image -> text side.
    """
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = log_scale.exp() * image_emb @ text_emb.T  # (B, B + K): row = image, column = caption
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits[:, : len(logits)].T, labels)) / 2


def siglip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor, bias: torch.Tensor, matches: torch.Tensor | None = None
) -> torch.Tensor:
    """Sigmoid loss: -sum_ij log sigmoid(z_ij (exp(log_scale) cos_ij + bias)) / B, z = +1 where caption j is true of image i, else -1.

    image_emb (B, E); text_emb (B + K, E). By default the first B captions match the images and K more are
    negatives; `matches` (B, B + K) bool says instead which pairs match, when a caption can be true of several images.
    """
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = log_scale.exp() * image_emb @ text_emb.T + bias  # (B, B + K)
    if matches is None:
        matches = torch.eye(len(logits), logits.shape[1], dtype=torch.bool, device=logits.device)  # image i <-> caption i
    signs = 2 * matches.to(logits.dtype) - 1  # +1 match, -1 no match
    return -F.logsigmoid(signs * logits).sum() / len(logits)


class ClipLoss(nn.Module):
    """CLIP loss with a learnable temperature, started at 1/0.07 as in the paper and capped at 100."""

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return clip_loss(image_emb, text_emb, self.log_scale.clamp(max=math.log(100)))


class SigLipLoss(nn.Module):
    """SigLIP loss with learnable temperature and bias, started at 10 and -10 as in the paper."""

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.bias = nn.Parameter(torch.tensor(-10.0))

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor, matches: torch.Tensor | None = None) -> torch.Tensor:
        return siglip_loss(image_emb, text_emb, self.log_scale, self.bias, matches)


LOSSES = {"clip": ClipLoss, "siglip": SigLipLoss}

# ---------------------------------------------------------------- text

WORDS = ["<pad>", "<eos>", *vocabulary()]  # word-level: the shapes world has under 60 words
WORD_IDS = {word: i for i, word in enumerate(WORDS)}
PAD, EOS = 0, 1


def encode_texts(texts: list[str], max_len: int) -> torch.Tensor:
    """Word ids with <eos> appended, right-padded with <pad>: (B, max_len) long."""
    rows = []
    for text in texts:
        words = split_words(text)
        unknown = sorted({w for w in words if w not in WORD_IDS})
        if unknown:
            raise ValueError(f"unknown words {unknown} in {text!r}; the shapes world knows only: {' '.join(WORDS[2:])}")
        if len(words) + 1 > max_len:
            raise ValueError(f"{text!r} has {len(words)} words; at most {max_len - 1} fit (max_len={max_len} with <eos>)")
        rows.append([WORD_IDS[w] for w in words] + [EOS] + [PAD] * (max_len - len(words) - 1))
    return torch.tensor(rows, dtype=torch.long).view(len(texts), max_len)  # (B, max_len)


@dataclass
class TextConfig:
    """Sizes of the caption encoder."""

    vocab_size: int = len(WORDS)
    max_len: int = 40  # the longest caption (4 objects) has 35 words
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0


class TextEncoder(nn.Module):
    """Word embeddings + positions -> causal blocks -> the <eos> token's vector (B, D), as in CLIP."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, config.max_len, config.dim))
        # causal: a word never sees the padding after <eos>, so no padding mask is needed
        self.blocks = nn.ModuleList(Block(config.dim, config.heads, config.mlp_ratio, causal=True) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, : int((ids != PAD).sum(dim=1).max())]  # drop columns that are padding in every row: same result, less work
        x = self.embed(ids) + self.pos_embed[:, : ids.shape[1]]  # (B, L, D)
        for block in self.blocks:
            x = block(x)
        eos = (ids == EOS).int().argmax(dim=1)  # (B,) position of <eos>
        return self.norm(x[torch.arange(len(ids)), eos])  # (B, D)


# ---------------------------------------------------------------- the dual encoder


@dataclass
class ContrastiveConfig:
    """Image encoder, text encoder, the shared embedding width, and which loss."""

    vit: ViTConfig = field(default_factory=ViTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 64
    loss: str = "clip"

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {', '.join(LOSSES)}")


class ContrastiveModel(nn.Module):
    """ViT + text encoder, each followed by a linear map into a shared space of unit vectors."""

    def __init__(self, config: ContrastiveConfig):
        super().__init__()
        self.config = config
        self.vit = ViT(config.vit)
        self.text = TextEncoder(config.text)
        self.image_proj = nn.Linear(config.vit.dim, config.embed_dim, bias=False)
        self.text_proj = nn.Linear(config.text.dim, config.embed_dim, bias=False)
        self.loss = LOSSES[config.loss]()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> unit vectors (B, E)."""
        return F.normalize(self.image_proj(ViT.pool(self.vit(images))), dim=-1)

    def encode_texts(self, ids: torch.Tensor) -> torch.Tensor:
        """Word ids (B, L) -> unit vectors (B, E)."""
        return F.normalize(self.text_proj(self.text(ids)), dim=-1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The contrastive loss of B images (B, 3, H, W) whose captions are the first B of ids (B + K, L)."""
        return self.loss(self.encode_images(images), self.encode_texts(ids))


# ---------------------------------------------------------------- training


@dataclass
class PretrainConfig:
    """The whole pretraining recipe; its hash names the cached encoder."""

    model: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    n_train: int = 20000
    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 30
    partial: float = 0.5  # probability that a caption describes a random subset of the objects
    no_places: float = 0.5  # probability that a caption leaves out where the objects are
    hard_negatives: bool = True  # add, per image, a caption with one shape, size or colour changed
    seed: int = 0


def default_recipe(quick: bool | None = None, loss: str = "clip", image_size: int = ViTConfig.image_size) -> PretrainConfig:
    """The course's pretraining recipe: full mode (a minute or two on 2 cores), or tiny in quick mode; images image_size px."""
    quick = runtime.quick() if quick is None else quick
    model = ContrastiveConfig(vit=ViTConfig(image_size=image_size), loss=loss)
    if quick:
        return PretrainConfig(model=model, n_train=512, steps=20, batch_size=64, warmup=5)
    return PretrainConfig(model=model)


def prepare_pairs(dataset) -> tuple[torch.Tensor, list[list[SceneObject]]]:
    """Images as uint8 (N, 3, H, W) (4x smaller than float) and each image's objects, to caption on the fly."""
    images = images_to_uint8(dataset["image"])  # (N, 3, H, W)
    return images, [[SceneObject(**o) for o in objects] for objects in dataset["objects"]]


def sample_captions(scenes: list[list[SceneObject]], recipe: PretrainConfig, generator: torch.Generator) -> tuple[list[str], list[str]]:
    """Per scene, a true caption and a hard negative: the same caption with one object changed so it is false.

    The caption covers all objects or (with probability `partial`) a random subset, with or without
    places: varied captions teach the text encoder short descriptions such as 'a large red circle'.
    """
    captions, negatives = [], []
    for objects in scenes:
        u = torch.rand(3, generator=generator)
        subset = objects
        if u[0] < recipe.partial:  # a random non-empty subset, in reading order
            keep = torch.randperm(len(objects), generator=generator)[: int(u[1] * len(objects)) + 1].sort().values
            subset = [objects[i] for i in keep]
        places = bool(u[2] >= recipe.no_places)
        captions.append(caption(subset, places))
        negatives.append(caption(_falsify(subset, objects, places, generator), places))
    return captions, negatives


def _said(o: SceneObject, places: bool, **change) -> tuple:
    """What a caption says of o, with one attribute changed if asked: (shape, colour, size[, row, col])."""
    kept = {"shape": o.shape, "colour": o.colour, "size": o.size, **change}
    return (kept["shape"], kept["colour"], kept["size"]) + ((o.row, o.col) if places else ())


def _falsify(subset: list[SceneObject], scene: list[SceneObject], places: bool, generator: torch.Generator) -> list[SceneObject]:
    """Change one object's shape (half the time), size or colour so that the scene has no such object."""
    present = {_said(o, places) for o in scene}
    t = int(torch.randint(len(subset), (1,), generator=generator))
    u = float(torch.rand(1, generator=generator))
    options = {"shape": SHAPES, "size": SIZES, "colour": tuple(COLOURS)}
    order = ["shape", "size", "colour"] if u < 0.5 else ["size", "colour", "shape"] if u < 0.75 else ["colour", "shape", "size"]
    for attribute in order:  # the first attribute whose change makes the caption false
        values = [v for v in options[attribute] if _said(subset[t], places, **{attribute: v}) not in present]
        if values:
            pick = replace(subset[t], **{attribute: values[int(torch.randint(len(values), (1,), generator=generator))]})
            return subset[:t] + [pick] + subset[t + 1 :]
    raise RuntimeError("no change of shape, size or colour makes this caption false")


def train_contrastive(
    recipe: PretrainConfig, images: torch.Tensor | None = None, scenes: list | None = None, progress: bool = True
) -> tuple[ContrastiveModel, dict]:
    """Train a ContrastiveModel on (image, caption) pairs; returns it with {'loss': [...], 'seconds': s}.

    images (uint8 (N, 3, H, W)) and scenes (their objects) default to the first `recipe.n_train`
    training examples. The same recipe on the same machine gives the same weights.
    """
    from tqdm.auto import tqdm

    if images is None or scenes is None:
        world = WorldConfig(image_size=recipe.model.vit.image_size)
        images, scenes = prepare_pairs(load_split("train", recipe.n_train, world, progress=progress))
    generator = runtime.seed_everything(recipe.seed)
    model = ContrastiveModel(recipe.model)
    optimizer = Optimizer(model.parameters(), _optim(recipe))
    order, history, start = torch.empty(0, dtype=torch.long), {"loss": []}, time.perf_counter()
    model.train()
    for _ in (bar := tqdm(range(recipe.steps), desc=f"{recipe.model.loss} pretraining", disable=not progress)):
        if len(order) < recipe.batch_size:  # a fresh shuffle each epoch
            order = torch.cat([order, torch.randperm(len(images), generator=generator)])
        batch, order = order[: recipe.batch_size], order[recipe.batch_size :]
        captions, negatives = sample_captions([scenes[i] for i in batch], recipe, generator)
        texts = captions + negatives if recipe.hard_negatives else captions
        loss = model(images[batch].float() / 255, encode_texts(texts, recipe.model.text.max_len))
        optimizer.step(loss)
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    history["seconds"] = time.perf_counter() - start
    return model.eval(), history


def _optim(recipe: PretrainConfig | TextTuningConfig) -> OptimConfig:
    """AdamW with PyTorch's default betas, warm-up, then a cosine decay to 0; gradients clipped to norm 1."""
    return OptimConfig(lr=recipe.lr, steps=recipe.steps, warmup=recipe.warmup, floor=0.0, weight_decay=recipe.weight_decay)


# ---------------------------------------------------------------- locked-image text tuning (LiT)


TUNING_VERSION = 2  # bump when `tuning_captions` or `tune_text` change, so old tuned models are not reused


@dataclass
class TextTuningConfig:
    """Locked-image text tuning: the pretrained ViT frozen, the text tower and both projections trained on one-object captions."""

    whole_scene: float = 0.25  # probability that a caption describes the whole scene (as in pretraining) instead of one object
    steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: int = 30
    seed: int = 0


def default_text_tuning(quick: bool | None = None) -> TextTuningConfig:
    """The course's text tuning: 1,000 steps (32 to 43 s measured on 2 cores), or a few in quick mode."""
    quick = runtime.quick() if quick is None else quick
    return TextTuningConfig(steps=20, batch_size=64, warmup=5) if quick else TextTuningConfig()


def tuning_captions(scenes: list[list[SceneObject]], whole_scene: float, generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """Per scene a true caption and a hard negative of it: one object without its place ('a large red circle'),
    or with probability `whole_scene` the whole scene, with or without places.

    Returns the distinct captions, sorted, and which are true of which scene: (B, T) bool. A caption
    such as 'a large red circle' is true of every scene that holds one, not only of the scene it was
    drawn for, and a whole-scene caption of every scene that holds all it names, so the labels come
    from the scenes rather than from the batch's diagonal.
    """
    claims = {}  # caption -> (what it claims, whether it names places)
    for objects in scenes:
        if float(torch.rand(1, generator=generator)) < whole_scene:
            described, places = objects, bool(torch.rand(1, generator=generator) < 0.5)
        else:
            described, places = [objects[int(torch.randint(len(objects), (1,), generator=generator))]], False
        for told in (described, _falsify(described, objects, places, generator)):
            claims[caption(told, places)] = (_claims(told, places), places)
    texts = sorted(claims)
    held = [{places: _claims(objects, places) for places in (False, True)} for objects in scenes]
    return texts, torch.tensor([[claims[t][0] <= h[claims[t][1]] for t in texts] for h in held], dtype=torch.bool)


def _claims(objects: list[SceneObject], places: bool) -> frozenset:
    """What a caption of `objects` says is in the picture, as a set that a scene's own set must contain:
    (shape, colour, size[, row, col], k) for the k-th object so described (a repeated object must be there twice)."""
    claims, seen = set(), {}
    for o in objects:
        key = _said(o, places)
        seen[key] = seen.get(key, -1) + 1
        claims.add((key, seen[key]))
    return frozenset(claims)


def tune_text(
    model: ContrastiveModel, tuning: TextTuningConfig, images: torch.Tensor, scenes: list[list[SceneObject]], progress: bool = True
) -> tuple[ContrastiveModel, dict]:
    """LiT: a copy of `model` whose text tower and projections learn, its ViT locked, from `tuning_captions`; -> (model, history).

    The loss is SigLIP's, with every (image, caption) pair labelled by whether the caption is true of
    the image. images: uint8 (N, 3, H, W) and scenes: their objects, as `prepare_pairs` gives them.
    """
    from tqdm.auto import tqdm

    generator = runtime.seed_everything(tuning.seed)
    model = copy.deepcopy(model).eval()
    model.vit.requires_grad_(False)
    with torch.no_grad():  # the locked ViT sees each image once: (N, D) pooled tokens
        pooled = torch.cat([ViT.pool(model.vit(images[i : i + 500].float() / 255)) for i in range(0, len(images), 500)])
    loss_fn = SigLipLoss()
    parameters = [*model.text.parameters(), *model.text_proj.parameters(), *model.image_proj.parameters(), *loss_fn.parameters()]
    optimizer = Optimizer(parameters, _optim(tuning))
    history, start = {"loss": []}, time.perf_counter()
    model.text.train()
    for _ in (bar := tqdm(range(tuning.steps), desc="text tuning (ViT locked)", disable=not progress)):
        batch = torch.randint(len(images), (tuning.batch_size,), generator=generator)
        texts, matches = tuning_captions([scenes[i] for i in batch], tuning.whole_scene, generator)
        image_emb = model.image_proj(pooled[batch])  # (B, E)
        loss = loss_fn(image_emb, model.text_proj(model.text(encode_texts(texts, model.config.text.max_len))), matches)
        optimizer.step(loss)
        history["loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    history["seconds"] = time.perf_counter() - start
    return model.eval(), history


# ---------------------------------------------------------------- evaluation


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
    truth = torch.tensor([classes.index(next((o["colour"], o["shape"]) for o in objs if o["size"] == "large")) for objs in subset["objects"]])
    predicted = zero_shot_predict(model, images_to_tensor(subset["image"]), prompts)
    return {"accuracy": (predicted == truth).float().mean().item(), "n": len(keep), "predicted": predicted, "truth": truth}


# ---------------------------------------------------------------- the cached encoder


def models_dir() -> Path:
    """Where pretrained encoders are cached: <runtime.cache_dir()>/models."""
    return runtime.cache_dir() / "models"


def recipe_path(recipe: PretrainConfig) -> Path:
    """The cache folder for this exact recipe: vit-<loss>-<steps>-<hash of every setting and of the data's version>."""
    digest = settings_digest({"recipe": config_to_dict(recipe), "data_version": DATA_VERSION})  # redrawn data -> a new encoder
    return models_dir() / f"vit-{recipe.model.loss}-{recipe.steps}steps-{digest}"


def tuned_path(recipe: PretrainConfig, tuning: TextTuningConfig) -> Path:
    """The cache folder for `recipe`'s encoder after `tune_text(tuning)`: its folder name + -lit- + a hash of the tuning."""
    digest = settings_digest({"tuning": config_to_dict(tuning), "version": TUNING_VERSION})  # relabelled captions -> a new tuning
    return recipe_path(recipe).with_name(f"{recipe_path(recipe).name}-lit-{digest}")


def _cached(path: Path, config: ContrastiveConfig, build: Callable[[], ContrastiveModel]) -> ContrastiveModel:
    """The model saved in `path`, or `build()`, saved there first."""
    if (path / WEIGHTS).is_file() and (path / CONFIG).is_file():
        return load_checkpoint(path, ContrastiveModel(config), config).eval()
    model = build()
    save_checkpoint(path, model, config)
    return model


def pretrained_model(
    quick: bool | None = None, loss: str = "clip", progress: bool = True, image_size: int = ViTConfig.image_size, text_tuned: bool = False
) -> ContrastiveModel:
    """The course's pretrained dual encoder: from the cache, or trained with `default_recipe` and cached.

    text_tuned: then tuned with `tune_text(default_text_tuning())`, the ViT unchanged (cached too).
    """
    recipe = default_recipe(quick, loss, image_size)
    pairs = functools.cache(lambda: prepare_pairs(load_split("train", recipe.n_train, WorldConfig(image_size=image_size), progress=progress)))
    model = _cached(recipe_path(recipe), recipe.model, lambda: train_contrastive(recipe, *pairs(), progress=progress)[0])
    if not text_tuned:
        return model
    tuning = default_text_tuning(quick)
    return _cached(tuned_path(recipe, tuning), recipe.model, lambda: tune_text(model, tuning, *pairs(), progress=progress)[0])


def pretrained_vit(quick: bool | None = None, loss: str = "clip", progress: bool = True, image_size: int = ViTConfig.image_size) -> ViT:
    """The pretrained ViT, frozen (eval mode, no gradients), for later lessons: `vit(images, layer=-2)`."""
    vit = pretrained_model(quick, loss, progress, image_size).vit.eval()
    return vit.requires_grad_(False)
