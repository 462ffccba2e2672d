"""Training the tiny MobileVLM: one loop for every stage, checkpoints, resume, evaluation (lesson 07).

The recipe follows MobileVLM, shrunk to a CPU:
    align     stage 1: image -> caption; the projector learns, and (`align_llm`, our default) the LLM too
    instruct  stage 2: image -> multi-turn question/answer conversation (or `max_turns` random questions of it);
              the LLM learns, and with `instruct_projector` the projector too (ViT frozen)
MobileVLM's stage 1 trains only the projector because its LLM arrives pretrained; ours starts from
random weights, and with a frozen random LLM the answer tokens barely look at the picture (lesson 07).
MobileVLM's stage 2 tunes the projector too; ours keeps stage 1's projector, because at stage 2's high
learning rate the projector forgets shapes (lesson 07, section 10).
Both stages use AdamW, a linear warm-up then a cosine decay to 10% (`LR_FLOOR`), and gradient clipping (optim.py).

The ViT never changes, so each image's patch tokens are computed once (`prepare_split`) and reused
every epoch. The batch at step s is a pure function of (seed, stage, s), so resuming from a checkpoint
needs only the weights, the optimizer and scheduler state and the step: `train(config, out, resume=True)`
ends with exactly the weights of an uninterrupted run.

A checkpoint folder holds model.safetensors + config.json (the whole TrainConfig) + trainer_state.pt,
each written atomically (`checkpoint.py`); trainer_state.pt records a digest of the weights it belongs to.

Public API
- `SPLITS` (data.py's three, drawn.py's "drawn"), `PreparedSplit`, `load_images(split, n, encoder_quick, image_size)`,
  `split_from_dataset(model, dataset, features)`, `prepare_split(model, split, n, encoder_quick, layout)`,
  `prepare_data(model, config)`: images -> cached ViT features + captions + conversations.
- `build_model(config)`: a MobileVLM with the pretrained, frozen ViT; `stage_plan(config)`, `total_steps(config)`,
  `stage_optim(stage, ...)`.
- `batch_rows`, `conversation_batch`, `caption_batch`: what one step trains on.
- `train(config, out, resume, ...)` -> (model, history), stage by stage (`train_stage`), step by step (`train_step`);
  `predict(model, split)` -> records;
  `exact_match(records)` -> overall and per question type; `load_trained(directory)` -> (model, config);
  the trained-model cache (`trained_vlm`) is in cache.py.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from mobilevlm_mini import distributed
from mobilevlm_mini.chat import encode_caption, encode_turns, pad_pairs
from mobilevlm_mini.checkpoint import (
    CONFIG,
    TRAINER_STATE,
    WEIGHTS,
    load_checkpoint,
    load_config,
    load_trainer_state,
    save_checkpoint,
    save_trainer_state,
)
from mobilevlm_mini.config import StageConfig, TrainConfig
from mobilevlm_mini.contrastive import default_recipe
from mobilevlm_mini.data import (
    QUESTION_TYPES,
    SPLIT_SEEDS,
    SceneObject,
    WorldConfig,
    conversation,
    images_to_tensor,
    load_split,
    world_config,
)
from mobilevlm_mini.devices import resolve_device
from mobilevlm_mini.drawn import DRAWN_SPLIT, DrawnConfig, load_drawn_split
from mobilevlm_mini.encoders import pretrained_vit
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.optim import OptimConfig, Optimizer
from mobilevlm_mini.runtime import derive_seed, seed_everything

STAGES = ("align", "instruct")
SPLITS = (*SPLIT_SEEDS, DRAWN_SPLIT)  # what `load_images`, `prepare_split` and `eval --split` take
LR_FLOOR = 0.1  # both stages (and video training) decay to 10% of their peak learning rate


def trained_parts(stage: str, config: TrainConfig) -> tuple[str, ...]:
    """Which parts learn in a stage: stage 1 the projector (+ the LLM with align_llm), stage 2 the LLM (+ the
    projector with instruct_projector); never the ViT."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    if stage == "align":
        return ("projector", "llm") if config.align_llm else ("projector",)
    return ("projector", "llm") if config.instruct_projector else ("llm",)


# ---------------------------------------------------------------- data


@dataclass
class PreparedSplit:
    """One split, ready to train on: frozen ViT features, captions, and each image's (type, question, answer) turns."""

    features: torch.Tensor  # (N, N_patches, D_vision)
    captions: list[str]
    conversations: list[list[tuple[str, str, str]]]
    dataset: object  # the datasets.Dataset it came from (images for plots)
    scenes: list[list[SceneObject]] | None = None  # each image's objects, for fresh questions (StageConfig.questions)

    def __len__(self) -> int:
        return len(self.captions)

    def to(self, device: torch.device) -> PreparedSplit:
        """The same split with its features on `device` (itself when they are there already)."""
        return self if self.features.device == device else replace(self, features=self.features.to(device))


def load_images(split: str, n: int, encoder_quick: bool = False, image_size: int = WorldConfig.image_size,
                layout: str = "aligned", augment: bool = False):
    """The first n images (image_size px, objects placed by `layout`) of a split (one of `SPLITS`); the training split
    reuses the cached images the ViT was pretrained on (drawn with data.Augment when `augment`: training pictures
    only), and "drawn" is drawn.py's hand-drawn split."""
    if n <= 0:
        raise ValueError(f"n must be a positive number of images, got {n}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == DRAWN_SPLIT:
        return load_drawn_split(n, DrawnConfig(world=WorldConfig(image_size=image_size)), progress=False)
    if augment and split != "train":
        raise ValueError(f"augment draws training pictures only; the {split!r} split is drawn plain")
    # a prefix of a split is a smaller split
    count = max(n, default_recipe(encoder_quick).n_train) if split == "train" else n
    return load_split(split, count, world_config(image_size, layout, augment), progress=False).select(range(n))


def split_from_dataset(model: MobileVLM | None, dataset, features: torch.Tensor | None = None) -> PreparedSplit:
    """Run the frozen ViT once over a shapes-world dataset's images (unless `features` are given) and keep its texts."""
    if features is None:
        device = next(model.parameters()).device
        features = model.encode_images(images_to_tensor(dataset["image"]).to(device))  # (n, N, D_vision)
    conversations = [list(zip(t, q, a, strict=False))
                     for t, q, a in zip(dataset["question_types"], dataset["questions"], dataset["answers"],
                                        strict=True)]
    # lists: a datasets Column reads Arrow per row
    scenes = [[SceneObject(**o) for o in objects] for objects in dataset["objects"]]
    return PreparedSplit(features, list(dataset["caption"]), conversations, dataset, scenes)


def prepare_split(model: MobileVLM, split: str, n: int, encoder_quick: bool = False,
                  layout: str = "aligned", augment: bool = False) -> PreparedSplit:
    """The first n images of a split, drawn at the model's image size, with their ViT features computed once."""
    return split_from_dataset(model, load_images(split, n, encoder_quick, model.config.vit.image_size, layout,
                                                 augment))


def prepare_data(model: MobileVLM, config: TrainConfig) -> dict[str, PreparedSplit]:
    """The training and validation splits of a run (the test split is only for the final report)."""
    return {
        "train": prepare_split(model, "train", config.n_train, config.encoder_quick, config.layout, config.augment),
        "validation": prepare_split(model, "validation", config.n_val, config.encoder_quick, config.layout),
    }


def batch_rows(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Rows of batch `step` when every epoch is a fresh permutation of n rows: a pure function of its arguments."""
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    rows = torch.empty(batch_size, dtype=torch.long)
    for epoch in positions.div(n, rounding_mode="floor").unique().tolist():
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))
        inside = positions // n == epoch
        rows[inside] = order[positions[inside] % n]
    return rows


def turn_order(types: list[str], generator: torch.Generator | None = None,
               type_weights: dict[str, float] | None = None) -> list[int]:
    """The order in which a conversation's turns (of these question types) are used: natural without a generator,
    else random, each next turn drawn with probability proportional to its type's weight (1 unless given)."""
    if generator is None:
        return list(range(len(types)))
    if not type_weights:
        return torch.randperm(len(types), generator=generator).tolist()
    unknown = sorted(set(type_weights) - set(QUESTION_TYPES))
    if unknown:
        raise ValueError(f"unknown question types {unknown} in type_weights; expected some of {QUESTION_TYPES}")
    weights = torch.tensor([float(type_weights.get(kind, 1.0)) for kind in types])
    return torch.multinomial(weights, len(types), generator=generator).tolist()


def fresh_turns(data: PreparedSplit, row: int, generator: torch.Generator, balanced_counts: bool = False):
    """A new conversation about image `row`'s scene, drawn with a seed taken from `generator`."""
    if data.scenes is None:
        raise ValueError("fresh questions need each image's objects: build the split with split_from_dataset")
    seed = int(torch.randint(2**31, (1,), generator=generator))
    return conversation(data.scenes[row], np.random.default_rng(seed), balanced_counts=balanced_counts)


def conversation_batch(
    model: MobileVLM, data: PreparedSplit, rows: torch.Tensor, generator: torch.Generator | None = None,
    max_turns: int | None = None, type_weights: dict[str, float] | None = None, questions: str = "stored"
):
    """Each row's conversation in one sequence: (input_ids, features, attention_mask, labels), as MobileVLM takes them.

    With a generator the turns come in a random order each time, so no question type is tied to a place
    in the conversation and a single question (as in `answer`) looks like any turn; `max_turns` keeps
    only the first few of that order (1: one random question per image, as `answer` asks them), and
    `type_weights` makes some types come first more often (`turn_order`). `questions` ("fresh" or "balanced",
    with a generator) asks new questions about each image's scene instead of its stored conversation.
    """
    pairs = []
    for row in rows.tolist():
        turns = (fresh_turns(data, row, generator, questions == "balanced")
                 if generator is not None and questions != "stored" else data.conversations[row])
        order = turn_order([kind for kind, _, _ in turns], generator, type_weights)
        turns = [turns[i][1:] for i in order[:max_turns]]
        pairs.append(encode_turns(model.tokenizer, turns, model.config.question_first,
                                  image_tokens=model.num_visual_tokens))
    ids, mask, labels = (t.to(data.features.device) for t in pad_pairs(model.tokenizer, pairs))
    return ids, data.features[rows], mask, labels


def caption_batch(model: MobileVLM, data: PreparedSplit, rows: torch.Tensor, generator: torch.Generator | None = None):
    """'<bos> <image> x K caption <eos>' for each row: (input_ids, features, attention_mask, labels)."""
    pairs = [encode_caption(model.tokenizer, data.captions[row], image_tokens=model.num_visual_tokens)
             for row in rows.tolist()]
    ids, mask, labels = (t.to(data.features.device) for t in pad_pairs(model.tokenizer, pairs))
    return ids, data.features[rows], mask, labels


BATCHES = {"align": caption_batch, "instruct": conversation_batch}

# ---------------------------------------------------------------- model and schedule


def build_model(config: TrainConfig) -> MobileVLM:
    """A fresh MobileVLM (seeded from config.seed) around the course's pretrained, frozen ViT."""
    seed_everything(config.seed)
    vit = pretrained_vit(config.encoder_quick, **config.encoder_options())
    return MobileVLM(config.model, vit)


def stage_plan(config: TrainConfig) -> list[tuple[str, StageConfig, int]]:
    """(name, stage, first global step) for each stage with steps > 0, in training order."""
    plan, first = [], 0
    for name in STAGES:
        stage = getattr(config, name)
        if stage.steps < 0:
            raise ValueError(f"{name}.steps must be >= 0, got {stage.steps}")
        if stage.steps:
            plan.append((name, stage, first))
            first += stage.steps
    if not plan:
        raise ValueError("every stage has 0 steps; give align.steps or instruct.steps > 0")
    return plan


def total_steps(config: TrainConfig) -> int:
    """Optimizer steps of the whole run, every stage included."""
    _, stage, first = stage_plan(config)[-1]
    return first + stage.steps


def set_trainable(model: MobileVLM, stage: str, config: TrainConfig) -> list[torch.nn.Parameter]:
    """Freeze every part except those this stage trains (the ViT is always frozen); return the trainable parameters."""
    parts = trained_parts(stage, config)
    for part in ("projector", "llm"):
        for parameter in model.part_parameters(part):
            parameter.requires_grad_(part in parts)
    return [p for p in model.parameters() if p.requires_grad]


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: MobileVLM, data: PreparedSplit, batch_size: int = 512, progress: bool = False) -> list[dict]:
    """Ask every question of every image on its own (single turn, greedy): one record per question."""
    from tqdm.auto import tqdm

    items = [(row, *turn) for row, turns in enumerate(data.conversations) for turn in turns]
    model.eval()
    records = []
    for start in tqdm(range(0, len(items), batch_size), desc="answering", disable=not progress, mininterval=1):
        chunk = items[start : start + batch_size]
        rows = torch.tensor([row for row, *_ in chunk])
        answers = model.answer(data.features[rows], [question for _, _, question, _ in chunk])
        records += [
            {"image": row, "type": kind, "question": question, "answer": truth, "predicted": predicted}
            for (row, kind, question, truth), predicted in zip(chunk, answers, strict=True)
        ]
    return records


def exact_match(records: list[dict], group: str = "type", groups: tuple[str, ...] = QUESTION_TYPES) -> dict:
    """Exact-match accuracy overall and per group (a question's type; a clip's event kind), with the number N of
    each."""
    def score(rs: list[dict]) -> dict:
        return {"exact_match": sum(r["predicted"] == r["answer"] for r in rs) / max(1, len(rs)), "n": len(rs)}

    per_type = {kind: score([r for r in records if r[group] == kind]) for kind in groups}
    return {**score(records), "per_type": {kind: s for kind, s in per_type.items() if s["n"]}}


def stage_options(name: str, stage: StageConfig) -> dict:
    """Keyword arguments of this stage's batch function beyond the rows: `max_turns` and `type_weights` for stage 2,
    none for stage 1."""
    if name != "instruct":
        return {}
    return {"max_turns": stage.max_turns, "type_weights": stage.type_weights, "questions": stage.questions}


@torch.no_grad()
def validation_loss(model: MobileVLM, data: PreparedSplit, stage: str, batch_size: int = 64, **options) -> float:
    """Mean loss over the split for this stage's kind of sequence (`options` as in training), turns in their natural
    order."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data)))
        out = model(*BATCHES[stage](model, data, rows, **options))
        total, count = total + out.loss.item() * len(rows), count + len(rows)
    return total / count


# ---------------------------------------------------------------- checkpoints


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_run(out: Path, model: MobileVLM, config: TrainConfig, state: dict) -> None:
    """Write weights, config (with the run's world size and device) and trainer state; the trainer state names the
    weights file it belongs to by digest."""
    device = next(model.parameters()).device.type
    save_checkpoint(out, model, config, run={"world_size": distributed.world()[1], "device": device})
    save_trainer_state(out, {**state, "weights_sha256": _digest(out / WEIGHTS)})


def load_trained(directory: str | Path, device: str | torch.device = "cpu") -> tuple[MobileVLM, TrainConfig]:
    """A trained model (on `device`) and its TrainConfig from a checkpoint folder (FileNotFoundError names a missing
    file)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {directory}; "
                                f"train one with `python -m mobilevlm_mini train --out {directory}`")
    config = load_config(directory, TrainConfig)
    model = MobileVLM(config.model)  # the weights file holds the ViT too: nothing to download or pretrain
    return load_checkpoint(directory, model, config).eval().to(device), config


# ---------------------------------------------------------------- the loop


def new_history() -> dict[str, list]:
    """Empty training curves: per step (stage, loss, accuracy, lr) and per validation (loss, exact match)."""
    keys = ("step", "stage", "loss", "accuracy", "lr", "val_step", "val_stage", "val_loss", "val_exact_match")
    return {key: [] for key in keys}


@dataclass
class Run:
    """What the loop carries from step to step: the recipe, the model, its data, where it saves, its state so far."""

    config: TrainConfig
    model: MobileVLM
    data: dict[str, PreparedSplit]
    state: dict  # what trainer_state.pt holds: step, history, seconds (and, once saved, optimizer and scheduler)
    out: Path | None = None
    stop: int = 0  # the global step to stop after
    callback: Callable[[dict], None] | None = None
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        """Training time so far, the time of earlier sessions (before a resume) included."""
        return self.state["seconds"] + time.perf_counter() - self.started


def resume_run(config: TrainConfig, out: Path) -> tuple[MobileVLM, dict]:
    """The model and trainer state saved in `out` by a run of the same config (errors name what is missing or
    differs)."""
    missing = [name for name in (WEIGHTS, CONFIG, TRAINER_STATE) if not (out / name).is_file()]
    if missing:
        raise FileNotFoundError(f"cannot resume from {out}: missing {', '.join(missing)}")
    model = load_checkpoint(out, MobileVLM(config.model), config)  # a ValueError names every field that differs
    state = load_trainer_state(out)
    if state["weights_sha256"] != _digest(out / WEIGHTS):
        raise ValueError(f"{out / TRAINER_STATE} belongs to other weights than {out / WEIGHTS}; "
                         f"the folder was half-written")
    return model, state


def stage_optim(stage: StageConfig, weight_decay: float, grad_clip: float, fused: bool | None = None) -> OptimConfig:
    """A VLM stage's optimizer: AdamW with betas (0.9, 0.98), warm-up, then a cosine down to LR_FLOOR of the peak."""
    return OptimConfig(
        lr=stage.lr, steps=stage.steps, warmup=stage.warmup, floor=LR_FLOOR, weight_decay=weight_decay,
        betas=(0.9, 0.98), grad_clip=grad_clip, fused=fused,
    )


def train_step(model: MobileVLM, optimizer: Optimizer, name: str, stage: StageConfig, data: PreparedSplit, local: int,
               seed: int, ddp: DistributedDataParallel | None = None) -> tuple[float, float]:
    """One update on batch `local` of a stage: its rows and turn orders depend only on (seed, local).

    Returns the batch's (loss, teacher-forced accuracy). Under DDP (`ddp` wraps `model`) every process builds the
    same global batch and trains on its share of the rows; its loss is weighted by its share of the batch's labelled
    tokens, so DDP's average of the gradients is the gradient of the whole batch's mean loss.
    """
    rows = batch_rows(len(data), stage.batch_size, local, seed)
    generator = torch.Generator().manual_seed(derive_seed(seed, local))
    model.train()
    batch = distributed.shard(BATCHES[name](model, data, rows, generator, **stage_options(name, stage)))
    output = (ddp or model)(*batch, labelled_only=True)
    if ddp is None:
        optimizer.step(output.loss)
        return output.loss.item(), output.accuracy()
    mine = output.token_counts()  # (labelled tokens, right)
    summed = distributed.global_sum(torch.cat([mine, output.loss.detach()[None] * mine[0]]))
    optimizer.step(output.loss * mine[0] * distributed.world()[1] / summed[0])
    return (summed[2] / summed[0]).item(), (summed[1] / summed[0]).item()


def checkpoint(run: Run, name: str, stage: StageConfig, optimizer: Optimizer) -> None:
    """Validate, then save the run (when it has a folder) and call its callback."""
    history = run.state["history"]
    history["val_step"].append(run.state["step"])
    history["val_stage"].append(name)
    history["val_loss"].append(validation_loss(run.model, run.data["validation"], name, **stage_options(name, stage)))
    scored = exact_match(predict(run.model, run.data["validation"]))["exact_match"] if name == "instruct" else None
    history["val_exact_match"].append(scored)
    run.state = {"step": run.state["step"], "history": history, **optimizer.state_dict(), "seconds": run.seconds()}
    run.started = time.perf_counter()
    if run.out is not None:
        save_run(run.out, run.model, run.config, run.state)
    if run.callback is not None:
        run.callback(history)


def train_stage(run: Run, name: str, stage: StageConfig, first: int, progress: bool = True) -> None:
    """Train one stage from the run's current step up to its end (or the run's stop), validating every eval_every
    steps."""
    from tqdm.auto import tqdm

    config, state = run.config, run.state
    optimizer = Optimizer(set_trainable(run.model, name, config),
                          stage_optim(stage, config.weight_decay, config.grad_clip, True))
    ddp = DistributedDataParallel(run.model) if distributed.world()[1] > 1 else None  # after set_trainable
    if state["step"] > first:  # resuming inside this stage
        optimizer.load_state_dict(state)
    seed, end = config.seed * 10 + STAGES.index(name), min(first + stage.steps, run.stop)
    parts = ", ".join(trained_parts(name, config))
    bar = tqdm(total=stage.steps, initial=state["step"] - first, desc=f"{name} ({parts})",
               disable=not (progress and distributed.is_main()), mininterval=1)
    while run.state["step"] < end:
        loss, accuracy = train_step(run.model, optimizer, name, stage, run.data["train"], run.state["step"] - first,
                                    seed, ddp)
        run.state["step"] += 1
        for key, value in zip(("step", "stage", "loss", "accuracy", "lr"),
                              (run.state["step"], name, loss, accuracy, optimizer.lr), strict=True):
            run.state["history"][key].append(value)
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.2f}")
        at_end = run.state["step"] in (first + stage.steps, run.stop)
        if distributed.is_main() and (run.state["step"] % config.eval_every == 0 or at_end):
            checkpoint(run, name, stage, optimizer)
    bar.close()


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    data: dict[str, PreparedSplit] | None = None,
    callback: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> tuple[MobileVLM, dict]:
    """Run every stage of `config`; returns the model and its history (curves, seconds).

    out: checkpoint folder (written after each validation and at the end), or None to keep nothing on disk.
    resume: continue from the checkpoint in `out`; it must have been written with the same config.
    stop_after: stop (and save) after this many steps in all, as if interrupted.
    data: splits from `prepare_data`, to share the ViT features between runs (e.g. several projectors or seeds).
    callback(history): called after each validation, e.g. to redraw live curves.
    device: where to train (`devices.resolve_device`: cpu by default). Started by torchrun as one of several
    processes, it trains data-parallel (distributed.py); only the main process validates and saves.
    """
    started = time.perf_counter()
    device = device if isinstance(device, torch.device) else resolve_device(device)
    distributed.setup(device)
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs the checkpoint folder `out`")
    plan, total = stage_plan(config), total_steps(config)
    with distributed.main_first():  # the main process builds any missing cached piece; the others read it
        if resume:
            model, state = resume_run(config, out)
        else:
            model, state = build_model(config), {"step": 0, "history": new_history(), "seconds": 0.0}
        data = data or prepare_data(model, config)
    stop = total if stop_after is None else min(total, stop_after)
    data = {name: split.to(device) for name, split in data.items()}
    run = Run(config, model.to(device), data, state, out, stop, callback, started)
    for name, stage, first in plan:
        if run.state["step"] < min(first + stage.steps, stop):
            train_stage(run, name, stage, first, progress)
    history = run.state["history"]
    history["seconds"] = run.seconds()
    return model.eval(), history
