"""The tiny MobileVLM's configs: the model (`VLMConfig`), a training stage, a whole run, and named presets.

Run-time helpers (quick mode, `steps`, seeding, the cache folder) live in `runtime.py`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from mobilevlm_mini.data import shapes_tokenizer, world_config
from mobilevlm_mini.language import MobileLlamaConfig
from mobilevlm_mini.language import preset as llm_preset
from mobilevlm_mini.projectors import check_projector
from mobilevlm_mini.tokenizer import Tokenizer
from mobilevlm_mini.vision import ViTConfig

# ---------------------------------------------------------------- the tiny MobileVLM (lesson 07)


def tiny_llm(tokenizer: Tokenizer, **overrides) -> MobileLlamaConfig:
    """The tiny MobileLLaMA with one embedding row per token of `tokenizer` (other fields overridable by keyword)."""
    return llm_preset("tiny", vocab_size=tokenizer.vocab_size, **overrides)


SHAPES_LLM = tiny_llm(shapes_tokenizer())  # the course's LLM, sized for the shapes world's words


@dataclass
class VLMConfig:
    """The tiny MobileVLM: ViT patch tokens from block `vision_layer` -> projector `projector` -> MobileLLaMA `llm`."""

    vit: ViTConfig = field(default_factory=ViTConfig)
    llm: MobileLlamaConfig = SHAPES_LLM  # frozen, so one shared default is safe
    projector: str = "ldp"
    projector_options: dict = field(default_factory=dict)  # e.g. {"num_queries": 16} for "resampler"
    vision_layer: int = -2  # penultimate block, as MobileVLM and LLaVA read CLIP
    visual_positions: bool = True  # add a learned 2-D position code to each visual token (needs a square token grid)
    # '<user> q <image> <assistant>': the visual tokens can attend to the question (lesson 07)
    question_first: bool = True

    def __post_init__(self):
        check_projector(self.projector, self.projector_options)  # a wrong name fails here, before any work


QUESTION_SOURCES = ("stored", "fresh", "balanced")  # StageConfig.questions


@dataclass
class StageConfig:
    """One training stage: optimizer steps, images (or text lines) per step, peak learning rate, warm-up steps."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 10
    # stage 2: questions per image in one sequence, drawn at random (None: its whole conversation)
    max_turns: int | None = None
    # stage 2: how much more often a question type is drawn first (e.g. {"count": 2.0}; missing types weigh 1)
    type_weights: dict[str, float] | None = None
    # stage 2: "stored" asks each image the conversation saved with it; "fresh" asks new questions about its scene at
    # every step (data.conversation); "balanced" too, with count questions balanced over their answers
    questions: str = "stored"

    def __post_init__(self):
        if self.questions not in QUESTION_SOURCES:
            raise ValueError(f"unknown questions {self.questions!r}; expected one of {', '.join(QUESTION_SOURCES)}")


@dataclass
class TrainConfig:
    """A whole training run; saved as config.json next to the weights, so a checkpoint knows how it was made.

    Stages run in order: `align` (stage 1: captions; the projector learns, and the LLM too when
    `align_llm`) and `instruct` (stage 2: conversations; the LLM learns, and the projector too when
    `instruct_projector`); 0 steps skips a stage. The ViT is frozen throughout; `encoder_quick` picks
    which cached pretrained ViT (encoders.pretrained_vit(quick)).
    """

    model: VLMConfig = field(default_factory=VLMConfig)
    align: StageConfig = field(default_factory=lambda: StageConfig(steps=700, batch_size=32, lr=2e-3))
    instruct: StageConfig = field(default_factory=lambda: StageConfig(steps=1000, batch_size=128, lr=3e-3, max_turns=1))
    align_llm: bool = True  # stage 1 trains the LLM too: ours starts untrained (MobileVLM's arrives pretrained)
    # stage 2 trains the projector too, as MobileVLM does (at our lr 3e-3 it forgets shapes)
    instruct_projector: bool = False
    n_train: int = 5000  # training images (each with a caption and a whole conversation)
    n_val: int = 100  # validation images, checked every `eval_every` steps
    n_test: int = 1000  # test images, for the final report
    encoder_quick: bool = False
    layout: str = "aligned"  # where objects sit in every picture, the encoder's included (data.LAYOUTS; lesson 08)
    # training pictures (the encoder's and the VLM's) drawn with data.Augment, so that pictures drawn elsewhere are
    # read too (lesson 07, section 12); validation and test stay plain
    augment: bool = False
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    eval_every: int = 300
    seed: int = 0

    def __post_init__(self):
        world_config(self.model.vit.image_size, self.layout, self.augment)  # a bad layout or mix fails here, at once

    def encoder_options(self) -> dict:
        """The settings that pick its pretrained encoder (`default_recipe`, `pretrained_vit` take them by keyword)."""
        return {"image_size": self.model.vit.image_size, "layout": self.layout, "augment": self.augment,
                "stem": self.model.vit.stem}


VLM_PRESETS = {
    # the default (lesson 07): stage 1 700 steps of 32 captions; stage 2 trains the LLM alone on 128 images a step,
    # one question each; the choices behind it are measured in lesson 07, section 10
    "tiny": TrainConfig(),
    # CI and quick-mode lessons: the same code path, a few steps
    "quick": TrainConfig(
        align=StageConfig(steps=4, batch_size=8),
        instruct=StageConfig(steps=8, batch_size=8, max_turns=1),
        n_train=64, n_val=16, n_test=32, encoder_quick=True, eval_every=4,
    ),
}


def vlm_preset(name: str = "tiny", **overrides) -> TrainConfig:
    """A named training recipe ("tiny" or "quick"), with top-level fields overridden by keyword
    (projector="mlp", seed=1, ...).

    `projector` and `projector_options` go to the model config; every other keyword is a TrainConfig field.
    """
    if name not in VLM_PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(VLM_PRESETS)}")
    base = copy.deepcopy(VLM_PRESETS[name])
    model_keys = {key: overrides.pop(key) for key in ("projector", "projector_options") if key in overrides}
    unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown fields {unknown} for preset {name!r}; expected projector, projector_options "
                         f"or one of {sorted(TrainConfig.__dataclass_fields__)}")
    return replace(base, model=replace(base.model, **model_keys), **overrides)
