"""Video: short clips from the shapes world, frame sampling, and two ways to give the VLM several frames (lesson 11).

A clip is T frames (default 8) of one scene in which one thing happens at a random frame `change_at`
(1..T-1): frames before it show the old state, frames from it on the new one.

    move    a shape hops to the next cell        "which way does the circle move ?"        -> "left"
    colour  a shape changes colour               "what colour does the red square turn ?"  -> "blue"
    appear  a new shape appears in an empty cell  "what appears ?"                          -> "green cross"

Each answer needs a frame from before the change and one from after, so which frames are kept
decides what a model can know. Two ways to feed the kept frames to the tiny VLM:

    concat     each frame through a per-frame projector (pixel shuffle: 1 token), side by side:  K = n tokens
    resampler  all frames' patch tokens into one Perceiver resampler (as Flamingo does):        K = num_queries (4)

Public API
- `MOVES`, `VIDEO_KINDS`, `VideoConfig`, `Clip`, `make_clip(seed, index, config)`, `make_clips(n, seed, config)`.
- `uniform_frames(num_frames, n)`, `every_kth_frame(num_frames, k, start)`: which frame indices to keep.
- `video_tokenizer()`, `video_vlm_config(strategy, ...)`, `FrameTokens`, `VideoVLM` (`project`, `num_video_tokens`).
- `ClipFeatures`, `encode_clips(model, clips)`: the frozen ViT run once on each distinct frame.
- `video_batch`, `random_uniform_frames`, `train_video(model, data, clips, stage)`,
  `predict_video(model, data, clips, times)`, `video_accuracy(records)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mobilevlm_mini.chat import encode_turns, pad_pairs
from mobilevlm_mini.config import StageConfig, VLMConfig, tiny_llm
from mobilevlm_mini.data import (
    COLOURS,
    GRID,
    SHAPES,
    SIZES,
    SceneObject,
    WorldConfig,
    draw_scene,
    images_to_tensor,
    vocabulary,
)
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.optim import Optimizer
from mobilevlm_mini.patches import grid_shape, sincos_2d
from mobilevlm_mini.runtime import derive_seed
from mobilevlm_mini.tokenizer import Tokenizer
from mobilevlm_mini.train import batch_rows, exact_match, stage_optim

MOVES = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (d_row, d_col)
VIDEO_KINDS = ("move", "colour", "appear")
VIDEO_WORDS = ("which", "way", "does", "move", "turn", "appears", *MOVES)  # words the image questions never use
STRATEGIES = ("concat", "resampler")


@dataclass(frozen=True)
class VideoConfig:
    """What a clip may hold: frames, which kinds of event, how many static shapes besides those the event needs."""

    num_frames: int = 8
    kinds: tuple[str, ...] = VIDEO_KINDS
    max_others: int = 1
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self):
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be at least 2 (a before and an after), got {self.num_frames}")
        unknown = [k for k in self.kinds if k not in VIDEO_KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds must be distinct names from {', '.join(VIDEO_KINDS)}, got {list(self.kinds)}")
        if not 1 <= self.max_others <= 4:
            raise ValueError(f"max_others must be from 1 to 4 static shapes (the grid has 9 cells), "
                             f"got {self.max_others}")


@dataclass
class Clip:
    """A short video with one event: its two still states (2, H, W, 3) uint8, which state each of the T frames shows,
    one question."""

    states: np.ndarray  # (2, H, W, 3): before and after the event
    timeline: np.ndarray  # (T,) 0 before change_at, 1 from it on
    kind: str
    question: str
    answer: str
    change_at: int  # the first frame that shows the event's result
    objects: list[list[SceneObject]]  # the scene before and after
    background: int  # draw_scene(objects[s], rng=np.random.default_rng(background)) draws state s

    @property
    def frames(self) -> np.ndarray:
        """Every frame: (T, H, W, 3) uint8."""
        return self.states[self.timeline]

    @property
    def num_frames(self) -> int:
        """T, the clip's length in frames."""
        return len(self.timeline)


def _free(cells: set) -> set:
    """The grid cells not in `cells`."""
    return {(r, c) for r in range(GRID) for c in range(GRID)} - cells


def _new_object(rng: np.random.Generator, cells: set, kinds: set, shapes: tuple[str, ...] = SHAPES) -> SceneObject:
    """A random object in a cell not in `cells`, with a (colour, shape) not in `kinds`; both sets get the new one."""
    free_cells = sorted(_free(cells))
    free_kinds = [(c, s) for c in COLOURS for s in shapes if (c, s) not in kinds]
    row, col = free_cells[int(rng.integers(len(free_cells)))]
    colour, shape = free_kinds[int(rng.integers(len(free_kinds)))]
    cells.add((row, col))
    kinds.add((colour, shape))
    return SceneObject(shape, colour, SIZES[int(rng.integers(len(SIZES)))], row, col)


def _event(kind: str, rng: np.random.Generator,
           max_others: int) -> tuple[list[SceneObject], list[SceneObject], str, str]:
    """(objects before, objects after, question, answer). Both lists keep one order, so each object keeps its place
    jitter."""
    cells, kinds = set(), set()  # taken before or after, so no two objects ever share a cell or a name

    def others(count: int, shapes: tuple[str, ...] = SHAPES) -> list[SceneObject]:
        return [_new_object(rng, cells, kinds, shapes) for _ in range(count)]

    if kind == "move":  # the mover's shape is unique, so the question can name it by shape alone
        mover = _new_object(rng, cells, kinds)
        moves = [name for name, (dr, dc) in MOVES.items() if (mover.row + dr, mover.col + dc) in _free(cells)]
        direction = moves[int(rng.integers(len(moves)))]
        target = (mover.row + MOVES[direction][0], mover.col + MOVES[direction][1])
        cells.add(target)
        rest = others(int(rng.integers(0, max_others + 1)), tuple(s for s in SHAPES if s != mover.shape))
        moved = SceneObject(mover.shape, mover.colour, mover.size, *target)
        return [mover, *rest], [moved, *rest], f"which way does the {mover.shape} move ?", direction
    if kind == "colour":  # a twin of the same shape stays put: the last frame alone cannot say which one changed
        changer = _new_object(rng, cells, kinds)
        rest = [_new_object(rng, cells, kinds, (changer.shape,)), *others(int(rng.integers(0, max_others)))]
        new_colours = [c for c in COLOURS if (c, changer.shape) not in kinds]
        colour = new_colours[int(rng.integers(len(new_colours)))]
        changed = SceneObject(changer.shape, colour, changer.size, changer.row, changer.col)
        return [changer, *rest], [changed, *rest], f"what colour does the {changer.name} turn ?", colour
    if kind == "appear":  # at least one shape is there from the start: the last frame alone cannot say which one is new
        rest = others(int(rng.integers(1, max_others + 1)))
        new = _new_object(rng, cells, kinds)
        return rest, [*rest, new], "what appears ?", new.name
    raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(VIDEO_KINDS)}")


def make_clip(seed: int, index: int, config: VideoConfig = VideoConfig()) -> Clip:
    """Clip `index` of the set with base `seed`: one random event at a random frame (1..T-1), deterministic from
    (seed, index)."""
    rng = np.random.default_rng([seed, index])
    kind = config.kinds[int(rng.integers(len(config.kinds)))]
    before, after, question, answer = _event(kind, rng, config.max_others)
    change_at = int(rng.integers(1, config.num_frames))
    background = int(rng.integers(2**31))  # one background and one set of place jitters for both states
    states = np.stack([draw_scene(scene, config.world, np.random.default_rng(background)) for scene in (before, after)])
    timeline = (np.arange(config.num_frames) >= change_at).astype(np.int64)
    return Clip(states, timeline, kind, question, answer, change_at, [before, after], background)


def make_clips(n: int, seed: int = 0, config: VideoConfig = VideoConfig(), progress: bool = False) -> list[Clip]:
    """Clips 0..n-1 of the set with base `seed`."""
    from tqdm.auto import tqdm

    if n <= 0:
        raise ValueError(f"n must be a positive number of clips, got {n}")
    return [make_clip(seed, i, config) for i in tqdm(range(n), desc="drawing clips", disable=not progress)]


# ---------------------------------------------------------------- frame sampling


def uniform_frames(num_frames: int, n: int) -> list[int]:
    """n frame indices spread evenly over a clip of num_frames, both ends included; one frame is the middle one."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if not 1 <= n <= num_frames:
        raise ValueError(f"can keep 1 to {num_frames} frames of a {num_frames}-frame clip, got n={n}")
    if n == 1:
        return [(num_frames - 1) // 2]
    return [round(i * (num_frames - 1) / (n - 1)) for i in range(n)]


def every_kth_frame(num_frames: int, k: int, start: int = 0) -> list[int]:
    """Frames start, start + k, start + 2k, ...: a fixed frame rate, which need not reach the last frame."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if k <= 0:
        raise ValueError(f"k must be a positive frame step, got {k}")
    if not 0 <= start < num_frames:
        raise ValueError(f"start must be a frame index from 0 to {num_frames - 1}, got {start}")
    return list(range(start, num_frames, k))


# ---------------------------------------------------------------- the model


def video_tokenizer() -> Tokenizer:
    """The shapes world's tokenizer plus the few words the video questions and answers need."""
    return Tokenizer.from_words([*vocabulary(), *VIDEO_WORDS])


def video_vlm_config(strategy: str = "concat", factor: int = 6, num_queries: int = 4, **llm_overrides) -> VLMConfig:
    """A tiny MobileVLM config for video, with the tiny LLM (fields overridable by keyword, e.g. num_hidden_layers=2).

    concat: pixel shuffle on each frame, 36 / factor^2 tokens a frame (factor 6: the whole 6 x 6 grid in one token);
    resampler: one Perceiver over all frames, num_queries tokens.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    llm = tiny_llm(video_tokenizer(), **llm_overrides)
    if strategy == "concat":
        return VLMConfig(llm=llm, projector="pixel_shuffle", projector_options={"factor": factor})
    options = {"num_queries": num_queries, "positions": False}  # VideoVLM adds the place and time codes itself
    return VLMConfig(llm=llm, projector="resampler", projector_options=options, visual_positions=False)


@dataclass
class FrameTokens:
    """What VideoVLM reads in place of one image's features: the kept frames' ViT tokens and their times in the clip."""

    tokens: torch.Tensor  # (B, n, N, D_vision)
    times: torch.Tensor  # (B, n) frame indices

    def __post_init__(self):
        if self.tokens.ndim != 4 or tuple(self.times.shape) != tuple(self.tokens.shape[:2]):
            raise ValueError(f"expected tokens (B, n, N, D_vision) and times (B, n), "
                             f"got {tuple(self.tokens.shape)} and {tuple(self.times.shape)}")

    def __len__(self) -> int:
        return len(self.tokens)


class VideoVLM(MobileVLM):
    """The tiny MobileVLM reading several frames (a `FrameTokens`) where the prompt says <image>.

    concat: the per-frame projector on each frame (its ViT tokens first multiplied by `feature_scale`:
    the projector's one Linear reads 36 x 64 = 2304 numbers at once, and at full size the direction
    questions stayed at chance in our trials), then a learned time code added to each frame's
    tokens, frames side by side: K = n * K1.
    resampler: each patch token normalised, fixed 2-D place codes and learned time codes added (Flamingo
    adds learned time embeddings before its Perceiver resampler), all n * N tokens into one resampler:
    K = num_queries. Time codes start random, so that every frame starts with its own.
    (`num_visual_tokens` and `image_attention` keep their one-image meaning: K1, one frame's tokens.)
    """

    def __init__(self, config: VLMConfig, vit=None, tokenizer: Tokenizer | None = None, num_frames: int = 8,
                 feature_scale: float = 0.1):
        super().__init__(config, vit, tokenizer or video_tokenizer())
        self.strategy = "resampler" if config.projector == "resampler" else "concat"
        self.feature_scale = feature_scale  # concat: the ViT tokens are shrunk before the wide per-frame projector
        # where the time code is added
        width = config.vit.dim if self.strategy == "resampler" else config.llm.hidden_size
        self.time_embed = nn.Parameter(torch.randn(num_frames, width))  # (T, width)

    def num_video_tokens(self, n_frames: int) -> int:
        """K: how many tokens n kept frames become in the LLM's input."""
        if n_frames <= 0:
            raise ValueError(f"n_frames must be a positive number of frames, got {n_frames}")
        return self.num_visual_tokens * (n_frames if self.strategy == "concat" else 1)

    def project(self, frames: FrameTokens) -> torch.Tensor:
        """Kept frames -> visual tokens (B, K, hidden), each frame marked with its time in the clip."""
        if not isinstance(frames, FrameTokens):
            raise ValueError(f"VideoVLM reads FrameTokens (tokens (B, n, N, D_vision) and times (B, n)), "
                             f"got {type(frames).__name__}")
        if int(frames.times.min()) < 0 or int(frames.times.max()) >= len(self.time_embed):
            raise ValueError(f"frame times must lie in 0..{len(self.time_embed) - 1}, got {frames.times.tolist()}")
        x, time = frames.tokens, self.time_embed[frames.times][:, :, None, :]  # (B, n, N, D_vision), (B, n, 1, width)
        if self.strategy == "concat":
            visual = super().project(rearrange(x * self.feature_scale, "b t n d -> (b t) n d"))  # (B n, K1, hidden)
            visual = rearrange(visual, "(b t) k h -> b t k h", b=len(x)) + time  # (B, n, K1, hidden)
            return rearrange(visual, "b t k h -> b (t k) h")  # (B, n K1, hidden)
        places = sincos_2d(*grid_shape(x.shape[2]), x.shape[3]).to(x)  # (N, D_vision)
        x = F.layer_norm(x, x.shape[-1:]) + places + time  # what, where and when, each of about unit size
        return super().project(rearrange(x, "b t n d -> b (t n) d"))  # (B, num_queries, hidden)


# ---------------------------------------------------------------- data for the model


@dataclass
class ClipFeatures:
    """The frozen ViT's tokens of every distinct frame (M, N, D_vision) and, per clip, which row each frame is
    (C, T)."""

    states: torch.Tensor
    index: torch.Tensor

    def frames(self, rows: torch.Tensor, times: torch.Tensor | list[int]) -> FrameTokens:
        """The kept frames of some clips: rows (B,), times (B, n) or (n,) frame indices."""
        times = torch.as_tensor(times).expand(len(rows), -1)
        return FrameTokens(self.states[self.index[rows[:, None], times]], times)


def encode_clips(model: MobileVLM, clips: list[Clip], batch_size: int = 256) -> ClipFeatures:
    """Run the frozen ViT once on each distinct frame of each clip (the frames of one state are identical)."""
    states = [state for clip in clips for state in clip.states]
    offsets = np.cumsum([0] + [len(clip.states) for clip in clips[:-1]])
    # (C, T)
    index = torch.from_numpy(np.stack([offset + clip.timeline
                                       for offset, clip in zip(offsets, clips, strict=False)]))
    return ClipFeatures(model.encode_images(images_to_tensor(states), batch_size), index)


def video_batch(model: VideoVLM, data: ClipFeatures, clips: list[Clip], rows: torch.Tensor,
                times: torch.Tensor | list[int]):
    """Each clip's question and answer: (input_ids, FrameTokens of the kept frames, attention_mask, labels), as
    VideoVLM takes them."""
    frames = data.frames(rows, times)
    k = model.num_video_tokens(frames.times.shape[1])
    turns = [[(clips[row].question, clips[row].answer)] for row in rows.tolist()]
    ids, mask, labels = pad_pairs(model.tokenizer, [encode_turns(model.tokenizer, t, model.config.question_first,
                                                                 image_tokens=k) for t in turns])
    return ids, frames, mask, labels


def random_uniform_frames(num_frames: int, generator: torch.Generator) -> list[int]:
    """A random number n of kept frames (1..T), spread evenly over the clip: what one training step shows the model."""
    return uniform_frames(num_frames, int(torch.randint(1, num_frames + 1, (1,), generator=generator)))


def train_video(
    model: VideoVLM, data: ClipFeatures, clips: list[Clip], stage: StageConfig, seed: int = 0,
    first_last_steps: int = 0, weight_decay: float = 0.05, grad_clip: float = 1.0, progress: bool = True,
) -> dict[str, list]:
    """Train everything but the ViT on the clips' questions; each step keeps a random number of evenly spread frames.

    first_last_steps: a curriculum; the first steps show only the first and the last frame, the easiest view
    that still answers every question. Returns the history {"step", "loss", "frames"}; the batch and frames
    of step s depend only on (seed, s).
    """
    from tqdm.auto import tqdm

    if stage.steps <= 0:
        raise ValueError(f"stage.steps must be a positive number of steps, got {stage.steps}")
    if not 0 <= first_last_steps <= stage.steps:
        raise ValueError(f"first_last_steps must lie in 0..{stage.steps} (the number of steps), got {first_last_steps}")
    num_frames = clips[0].num_frames
    params = [p for p in model.parameters() if p.requires_grad]  # the ViT is frozen
    optimizer = Optimizer(params, stage_optim(stage, weight_decay, grad_clip))
    history = {"step": [], "loss": [], "frames": []}
    model.train()
    for step in tqdm(range(stage.steps), desc=f"training ({model.strategy})", disable=not progress, mininterval=1):
        rows = batch_rows(len(clips), stage.batch_size, step, seed)
        generator = torch.Generator().manual_seed(derive_seed(seed, step))
        times = [0, num_frames - 1] if step < first_last_steps else random_uniform_frames(num_frames, generator)
        loss = model(*video_batch(model, data, clips, rows, times)).loss
        optimizer.step(loss)
        for key, value in (("step", step + 1), ("loss", loss.item()), ("frames", len(times))):
            history[key].append(value)
    model.eval()
    return history


@torch.no_grad()
def predict_video(model: VideoVLM, data: ClipFeatures, clips: list[Clip], times: list[int],
                  batch_size: int = 512) -> list[dict]:
    """Ask each clip's question (greedy), showing the model only the frames at `times`: one record per clip."""
    model.eval()
    records = []
    for start in range(0, len(clips), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(clips)))
        answers = model.answer(data.frames(rows, times), [clips[row].question for row in rows.tolist()])
        records += [
            {"kind": clips[row].kind, "question": clips[row].question, "answer": clips[row].answer,
             "predicted": predicted, "change_at": clips[row].change_at}
            for row, predicted in zip(rows.tolist(), answers, strict=True)
        ]
    return records


def video_accuracy(records: list[dict]) -> dict[str, float]:
    """Exact-match accuracy over all records ("all") and per event kind present (`train.exact_match`, grouped by
    kind)."""
    if not records:
        raise ValueError("no records to score")
    scores = exact_match(records, "kind", VIDEO_KINDS)
    return {"all": scores["exact_match"], **{kind: s["exact_match"] for kind, s in scores["per_type"].items()}}
