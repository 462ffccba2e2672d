"""Contrastive pretraining: CLIP's softmax loss, SigLIP's sigmoid loss, a caption encoder (lesson 04).

An image encoder (vision.ViT) and a text encoder map matching image/caption pairs to nearby unit
vectors. CLIP scores every image against every caption in the batch and asks a softmax to pick the
right one, both ways; SigLIP asks an independent sigmoid "match or not?" of every pair.

Public API
- `clip_loss(img, txt, log_scale)`, `siglip_loss(img, txt, log_scale, bias, matches=None)`: the two losses;
  `ClipLoss` / `SigLipLoss`: the same with learnable temperature (and bias); `LOSSES` by name.
- `CAPTIONS` (a tokenizer.Tokenizer with only <pad> and <eos>), `WORDS` (its tokens), `encode_texts(texts, max_len)`:
  word-level token ids for captions and prompts.
- `TextConfig`, `TextEncoder`; `ContrastiveConfig`, `ContrastiveModel` (ViT + text encoder + loss).
- `PretrainConfig` (the whole recipe: model, data size, steps, batch, lr, seed) and
  `default_recipe(quick, loss)`: the course's recipe, smaller in quick mode.
- `prepare_pairs(dataset)`, `train_contrastive(recipe, ...)` -> (model, history) with a tqdm bar.
- `TextTuningConfig`, `default_text_tuning(quick)`, `tuning_captions`, `tune_text(model, tuning, images, scenes)`:
  locked-image text tuning (LiT): the ViT frozen, the text side taught to name single objects.

Using the trained pair (retrieval, zero-shot) is in zero_shot.py; the course's cached encoders in encoders.py.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from mobilevlm_mini import runtime
from mobilevlm_mini.attention import Block
from mobilevlm_mini.data import (
    COLOURS,
    SHAPES,
    SIZES,
    SceneObject,
    WorldConfig,
    caption,
    images_to_uint8,
    load_split,
    split_words,
    vocabulary,
    world_config,
)
from mobilevlm_mini.optim import OptimConfig, Optimizer
from mobilevlm_mini.tokenizer import CAPTION_SPECIALS, Tokenizer
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
    image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor, bias: torch.Tensor,
    matches: torch.Tensor | None = None
) -> torch.Tensor:
    """Sigmoid loss: -sum_ij log sigmoid(z_ij (exp(log_scale) cos_ij + bias)) / B, z = +1 where caption j is true of
    image i, else -1.

    image_emb (B, E); text_emb (B + K, E). By default the first B captions match the images and K more are
    negatives; `matches` (B, B + K) bool says instead which pairs match, when a caption can be true of several images.
    """
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = log_scale.exp() * image_emb @ text_emb.T + bias  # (B, B + K)
    if matches is None:
        # image i <-> caption i
        matches = torch.eye(len(logits), logits.shape[1], dtype=torch.bool, device=logits.device)
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

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor,
                matches: torch.Tensor | None = None) -> torch.Tensor:
        return siglip_loss(image_emb, text_emb, self.log_scale, self.bias, matches)


LOSSES = {"clip": ClipLoss, "siglip": SigLipLoss}

# ---------------------------------------------------------------- text

CAPTIONS = Tokenizer.from_words(vocabulary(), specials=CAPTION_SPECIALS, punctuation=())  # <pad> 0, <eos> 1, words
WORDS = CAPTIONS.tokens


def encode_texts(texts: list[str], max_len: int) -> torch.Tensor:
    """Word ids with <eos> appended, right-padded with <pad>: (B, max_len) long."""
    too_long = [t for t in texts if len(split_words(t)) >= max_len]
    if too_long:
        raise ValueError(f"{too_long[0]!r} has {len(split_words(too_long[0]))} words; "
                         f"at most {max_len - 1} fit (max_len={max_len} with <eos>)")
    return CAPTIONS.encode_batch(texts, add_bos=False, add_eos=True, length=max_len)[0]  # (B, max_len)


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
        self.blocks = nn.ModuleList(Block(config.dim, config.heads, config.mlp_ratio, causal=True)
                                    for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # drop columns that are padding in every row: same result, less work
        ids = ids[:, : int((ids != CAPTIONS.pad_id).sum(dim=1).max())]
        x = self.embed(ids) + self.pos_embed[:, : ids.shape[1]]  # (B, L, D)
        for block in self.blocks:
            x = block(x)
        eos = (ids == CAPTIONS.eos_id).int().argmax(dim=1)  # (B,) position of <eos>
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
    layout: str = "aligned"  # where objects sit in the pictures it learns from (data.LAYOUTS)
    augment: bool = False  # its pictures drawn with data.Augment (lesson 07, section 12)

    def world(self) -> WorldConfig:
        """The world its training pictures come from."""
        return world_config(self.model.vit.image_size, self.layout, self.augment)


def default_recipe(quick: bool | None = None, loss: str = "clip", image_size: int = ViTConfig.image_size,
                   layout: str = "aligned", augment: bool = False, stem: int = 0) -> PretrainConfig:
    """The course's pretraining recipe: full mode (a minute or two on 2 cores), or tiny in quick mode; images
    image_size px, objects placed by `layout`, drawn with data.Augment when `augment`; a ViT with a convolutional stem
    of `stem` channels (ViTConfig.stem; 0: none)."""
    quick = runtime.quick() if quick is None else quick
    model = ContrastiveConfig(vit=ViTConfig(image_size=image_size, stem=stem), loss=loss)
    if quick:
        return PretrainConfig(model=model, n_train=512, steps=20, batch_size=64, warmup=5, layout=layout,
                              augment=augment)
    return PretrainConfig(model=model, layout=layout, augment=augment)


def prepare_pairs(dataset) -> tuple[torch.Tensor, list[list[SceneObject]]]:
    """Images as uint8 (N, 3, H, W) (4x smaller than float) and each image's objects, to caption on the fly."""
    images = images_to_uint8(dataset["image"])  # (N, 3, H, W)
    return images, [[SceneObject(**o) for o in objects] for objects in dataset["objects"]]


def sample_captions(scenes: list[list[SceneObject]], recipe: PretrainConfig,
                    generator: torch.Generator) -> tuple[list[str], list[str]]:
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


def _falsify(subset: list[SceneObject], scene: list[SceneObject], places: bool,
             generator: torch.Generator) -> list[SceneObject]:
    """Change one object's shape (half the time), size or colour so that the scene has no such object."""
    present = {_said(o, places) for o in scene}
    t = int(torch.randint(len(subset), (1,), generator=generator))
    u = float(torch.rand(1, generator=generator))
    options = {"shape": SHAPES, "size": SIZES, "colour": tuple(COLOURS)}
    order = (["shape", "size", "colour"] if u < 0.5 else ["size", "colour", "shape"] if u < 0.75
             else ["colour", "shape", "size"])
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
        images, scenes = prepare_pairs(load_split("train", recipe.n_train, recipe.world(), progress=progress))
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
    return OptimConfig(lr=recipe.lr, steps=recipe.steps, warmup=recipe.warmup, floor=0.0,
                       weight_decay=recipe.weight_decay)


# ---------------------------------------------------------------- locked-image text tuning (LiT)


TUNING_VERSION = 2  # bump when `tuning_captions` or `tune_text` change, so old tuned models are not reused


@dataclass
class TextTuningConfig:
    """Locked-image text tuning: the pretrained ViT frozen, the text tower and both projections trained on one-object
    captions."""

    # probability that a caption describes the whole scene (as in pretraining) instead of one object
    whole_scene: float = 0.25
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


def tuning_captions(scenes: list[list[SceneObject]], whole_scene: float,
                    generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
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
    model: ContrastiveModel, tuning: TextTuningConfig, images: torch.Tensor, scenes: list[list[SceneObject]],
    progress: bool = True
) -> tuple[ContrastiveModel, dict]:
    """LiT: a copy of `model` whose text tower and projections learn, its ViT locked, from `tuning_captions`;
    -> (model, history).

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
    parameters = [*model.text.parameters(), *model.text_proj.parameters(), *model.image_proj.parameters(),
                  *loss_fn.parameters()]
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
