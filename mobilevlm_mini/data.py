"""The shapes world: coloured shapes on a 3 x 3 grid, drawn with numpy, with captions and questions.

The course cannot download images, so it draws its own. Every example is one image with
1-4 shapes, a caption, and a multi-turn conversation of question/answer pairs, all deterministic
from a seed. Splits are Hugging Face `datasets.Dataset`s, cached on disk.

Public API
- Constants: SHAPES, PLURALS, COLOURS (name -> RGB), SIZES, GRID, POSITIONS (the 9 cell names,
  row by row), NUMBERS, DIRECTIONS, QUESTION_TYPES (COARSE_TYPES + FINE_TYPES), SPLIT_SEEDS.
- `WorldConfig`: image size, object counts, which shapes/colours, `layout` (LAYOUTS: "aligned", each object inside
  the 2 x 2 patches one LDP token merges, or "straddle", across them; lesson 08); validated on creation;
  `world_config(image_size, layout, augment)` builds one, drawn with `Augment()` when augment (lesson 07).
- `SceneObject` (shape, colour, size, row, col); `sample_scene(rng, config)` -> list of them.
- `draw_scene(objects, config, rng)` -> (H, W, 3) uint8 image, anti-aliased by supersampling;
  `place_objects(objects, layout, rng)`: where their centres go.
- `caption(objects, places)`, `conversation(objects, rng, config, balanced_counts)` -> [(question_type, question,
  answer), ...].
- `make_example(seed, index, config)` -> one row as a dict; `example_row(index, objects, turns, image)` assembles it.
- `generate_dataset(n, seed, config, progress, workers, make)` -> `datasets.Dataset` (not cached; drawn in parallel;
  `make` draws one row: `make_example`, or another renderer's, such as drawn.py's).
- `load_split(split, n, config)` -> cached `datasets.Dataset` for "train"/"validation"/"test";
  `cached_split(path, draw)`: the caching itself (drawn.py's "drawn" split uses it too).
- `images_to_tensor(images)` -> (B, 3, H, W) float in [0, 1] (`images_to_uint8`: the same as bytes);
  `text_corpus(dataset)` -> lines; `scene_objects(row)` -> the row's objects as `SceneObject`s.
- `vocabulary()`: every token the captions, questions and answers can contain; `shapes_tokenizer()`: a Tokenizer of
  them.
- `data_dir()`: where splits are cached (<runtime.cache_dir()>/data); `split_path(split, n, config, renderer)`: one
  split's folder.

Rows have columns: image (Image), caption, questions, answers, question_types (lists of strings,
one conversation per image), objects (list of {shape, colour, size, row, col}), index.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from PIL import Image

from mobilevlm_mini.checkpoint import added_later, building, settings_digest
from mobilevlm_mini.photos import jpeg_round_trip, to_model_size
from mobilevlm_mini.runtime import cache_dir
from mobilevlm_mini.tokenizer import Tokenizer, split_words

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds", "cross": "crosses"}
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 205, 30),
    "green": (40, 160, 60),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
}
SIZES = ("small", "large")
SIZE_RADIUS = {"small": 0.22, "large": 0.42}  # radius as a fraction of a grid cell
GRID = 3
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIRECTIONS = {"left of": (0, -1), "right of": (0, 1), "above": (-1, 0), "below": (1, 0)}  # (d_row, d_col)
COARSE_TYPES = ("colour", "shape", "position", "count", "exists")
FINE_TYPES = ("size", "small", "neighbour")  # need detail that token reduction may blur
QUESTION_TYPES = COARSE_TYPES + FINE_TYPES
SPLIT_SEEDS = {"train": 1_000, "validation": 2_000, "test": 3_000}
DATA_VERSION = 2  # bump when drawing or text changes, so old caches are not reused
# where an object's centre may sit, in fractions of a cell from the cell's centre (lesson 08): "aligned" keeps every
# object inside the 2 x 2 patches that LDP merges into one token; "straddle" lets most of them cross those borders
LAYOUTS = {"aligned": 0.06, "straddle": 0.45}


@dataclass(frozen=True)
class Augment:
    """How far a training picture may stray from the plain world, so that a model also reads pictures drawn
    elsewhere (drawn.py): each picture drawn at a random side and resized as `ask` resizes, its background plain
    white or tinted, each object's colour, centre and radius a little off, some objects outlined, some pictures
    saved as JPEG. The scene and its texts do not change."""

    centre: float = 0.15  # centre up to +- this fraction of a cell from the cell's centre (the plain world: 0.06)
    radius: float = 0.15  # radius up to +- this fraction of its size's radius
    shade: int = 25  # each RGB channel of an object's colour shifted by up to +- this
    white: float = 0.3  # probability of a plain white background (else a random light tint and gradient)
    outline: float = 0.5  # probability that an object gets a dark outline
    sides: tuple[int, int] = (32, 144)  # drawn at a random side in this range (pixels), then resized to image_size
    jpeg: float = 0.5  # probability of a JPEG round trip at quality 60-95

    def __post_init__(self):
        for name, value, high in (("centre", self.centre, 0.49), ("radius", self.radius, 0.99),
                                  ("white", self.white, 1.0), ("outline", self.outline, 1.0), ("jpeg", self.jpeg, 1.0)):
            if not 0 <= value <= high:
                raise ValueError(f"Augment.{name} must be between 0 and {high}, got {value}")
        if not 0 <= self.shade <= 255:
            raise ValueError(f"Augment.shade must be an RGB shift between 0 and 255, got {self.shade}")
        if not 8 <= self.sides[0] <= self.sides[1]:
            raise ValueError(f"Augment.sides must be (low, high) pixels with 8 <= low <= high, got {self.sides}")


@dataclass(frozen=True)
class WorldConfig:
    """What the world may contain: image side in pixels, objects per image, shapes and colours; `augment` varies
    how its pictures are drawn (off by default: every split the course caches is drawn plain)."""

    image_size: int = 48  # 3 cells of 16 px: with 8 px patches each cell is exactly 2 x 2 patches (lesson 07)
    min_objects: int = 1
    max_objects: int = 4
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    supersample: int = 4  # sub-pixels per side for anti-aliasing
    augment: Augment | None = None
    layout: str = "aligned"  # a key of LAYOUTS

    def __post_init__(self):
        _check_name(self.layout, tuple(LAYOUTS), "layout")
        if self.augment is not None and self.layout != "aligned":
            raise ValueError("augment moves objects itself (Augment.centre); use it with layout 'aligned'")
        if self.image_size <= 0:
            raise ValueError(f"image_size must be a positive number of pixels, got {self.image_size}")
        if self.supersample <= 0:
            raise ValueError(f"supersample must be a positive integer, got {self.supersample}")
        for name in self.shapes:
            _check_name(name, SHAPES, "shape")
        for name in self.colours:
            _check_name(name, tuple(COLOURS), "colour")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, "
                             f"got min_objects={self.min_objects}, max_objects={self.max_objects}")
        capacity = min(GRID * GRID, len(self.shapes) * len(self.colours))
        if self.max_objects > capacity:
            raise ValueError(
                f"max_objects={self.max_objects} cannot fit: a {GRID}x{GRID} grid with {len(self.shapes)} shapes x "
                f"{len(self.colours)} colours holds at most {capacity} distinct objects"
            )


def world_config(image_size: int = WorldConfig.image_size, layout: str = "aligned",
                 augment: bool = False) -> WorldConfig:
    """The world of pictures image_size px wide, objects placed by `layout`, drawn with `Augment()` when `augment`."""
    return WorldConfig(image_size=image_size, layout=layout, augment=Augment() if augment else None)


def _check_name(name: str, allowed: tuple[str, ...], kind: str) -> None:
    if name not in allowed:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {', '.join(allowed)}")


@dataclass(frozen=True)
class SceneObject:
    """One shape in a scene: what it is and which grid cell (row, col) it sits in."""

    shape: str
    colour: str
    size: str
    row: int
    col: int

    def __post_init__(self):
        _check_name(self.shape, SHAPES, "shape")
        _check_name(self.colour, tuple(COLOURS), "colour")
        _check_name(self.size, SIZES, "size")
        if not (0 <= self.row < GRID and 0 <= self.col < GRID):
            raise ValueError(f"cell ({self.row}, {self.col}) is outside the {GRID}x{GRID} grid; "
                             f"rows and cols go from 0 to {GRID - 1}")

    @property
    def position(self) -> str:
        """The cell's name, e.g. 'top left'."""
        return POSITIONS[self.row * GRID + self.col]

    @property
    def name(self) -> str:
        """Colour and shape, e.g. 'red circle' (unique within a scene)."""
        return f"{self.colour} {self.shape}"


# ---------------------------------------------------------------- scenes


def sample_scene(rng: np.random.Generator, config: WorldConfig = WorldConfig()) -> list[SceneObject]:
    """A random scene: distinct cells, distinct (colour, shape) pairs, so every object can be named."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    cells = rng.choice(GRID * GRID, size=count, replace=False)
    kinds = rng.choice(len(config.shapes) * len(config.colours), size=count, replace=False)
    objects = [
        SceneObject(
            shape=config.shapes[kind % len(config.shapes)],
            colour=config.colours[kind // len(config.shapes)],
            size=SIZES[int(rng.integers(len(SIZES)))],
            row=int(cell) // GRID,
            col=int(cell) % GRID,
        )
        for cell, kind in zip(cells, kinds, strict=True)
    ]
    return sorted(objects, key=lambda o: (o.row, o.col))  # reading order


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which points (u, v), in units of the shape's radius around its centre, lie inside it (v points down)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "triangle":  # apex up at v = -1, base at v = 0.75
        return (v <= 0.75) & (np.abs(u) <= (v + 1.0) * 0.58)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")


def _background(rng: np.random.Generator, size: int, white: float = 0.0) -> np.ndarray:
    """A light background with a random tint and a faint gradient, or plain white with probability `white`:
    (H, W, 3) float."""
    if white and rng.random() < white:
        return np.full((size, size, 3), 255.0)
    tint = 232.0 + rng.uniform(-10, 10, size=3)  # (3,)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1, 1, size)
    gradient = 8.0 * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])  # (H, W)
    return tint[None, None, :] + gradient[:, :, None]


def _paint(image: np.ndarray, shape: str, cx: float, cy: float, radius: float, colour: np.ndarray, s: int) -> None:
    """Blend a shape of this colour into `image` (H, W, 3) float in place, anti-aliased over s x s sub-pixels."""
    size = image.shape[0]
    x0, x1 = max(int(cx - radius) - 1, 0), min(int(cx + radius) + 2, size)
    y0, y1 = max(int(cy - radius) - 1, 0), min(int(cy + radius) + 2, size)
    if x1 <= x0 or y1 <= y0:
        return
    xs = x0 + (np.arange((x1 - x0) * s) + 0.5) / s  # sub-pixel centres
    ys = y0 + (np.arange((y1 - y0) * s) + 0.5) / s
    inside = _inside(shape, (xs[None, :] - cx) / radius, (ys[:, None] - cy) / radius)  # (h*s, w*s)
    alpha = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))[:, :, None]  # coverage (h, w, 1)
    image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - alpha) + colour * alpha


def draw_scene(objects: Iterable[SceneObject], config: WorldConfig = WorldConfig(),
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Draw the objects: (H, W, 3) uint8. Edges are anti-aliased by averaging supersample^2 sub-pixels.

    With `config.augment` the picture is drawn by `_draw_augmented` from a stream spawned off `rng`, and `rng`
    advances as the plain picture's draws would (4 for the background, 2 per object): the conversation drawn next is
    the plain picture's."""
    rng = np.random.default_rng(0) if rng is None else rng
    if config.augment is not None:
        objects = list(objects)
        rng.random(4 + 2 * len(objects))
        return _draw_augmented(objects, config, rng.spawn(1)[0])
    size = config.image_size
    image = _background(rng, size)  # (H, W, 3)
    cell = size / GRID
    objects = list(objects)
    if config.layout == "aligned":
        centres = place_objects(objects, config.layout, rng)
    else:  # rng advances as the aligned picture's would: the conversation drawn next is the same in every layout
        rng.random(2 * len(objects))
        centres = place_objects(objects, config.layout, rng.spawn(1)[0])
    for obj, (cx, cy) in zip(objects, centres, strict=True):
        _paint(image, obj.shape, cx * cell, cy * cell, SIZE_RADIUS[obj.size] * cell,
               np.array(COLOURS[obj.colour], dtype=float), config.supersample)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def place_objects(objects: list[SceneObject], layout: str, rng: np.random.Generator,
                  tries: int = 20, attempts: int = 20) -> np.ndarray:
    """Centres (x, y) in cell units, one per object: its cell's centre moved by up to LAYOUTS[layout] of a cell on
    each axis. "aligned" draws 2 numbers per object; "straddle" keeps each shape inside the picture and away from
    the others: an object is redrawn up to `tries` times, a scene whose objects do not all fit up to `attempts` times,
    and then its objects sit at their cells' centres (never seen in 10,000 scenes)."""
    jitter = LAYOUTS[layout]
    cells = np.array([[o.col + 0.5, o.row + 0.5] for o in objects], dtype=float).reshape(-1, 2)  # (n, 2)
    if layout == "aligned":
        return cells + rng.uniform(-jitter, jitter, size=cells.shape)
    radii = np.array([SIZE_RADIUS[o.size] for o in objects])
    low = np.maximum(cells - jitter, radii[:, None])  # (n, 2): not past the picture's edge
    high = np.minimum(cells + jitter, GRID - radii[:, None])
    for _ in range(attempts):
        centres = np.empty_like(cells)
        for i in range(len(objects)):
            candidates = low[i] + (high[i] - low[i]) * rng.random((tries, 2))  # (tries, 2)
            apart = np.linalg.norm(candidates[:, None] - centres[None, :i], axis=-1)  # (tries, i)
            fits = np.flatnonzero((apart - radii[None, :i] - radii[i] > 0.05).all(axis=1))
            if not len(fits):
                break
            centres[i] = candidates[fits[0]]
        else:
            return centres
    return cells


def _draw_augmented(objects: Iterable[SceneObject], config: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """`draw_scene` with `config.augment`'s variations, at a random side, resized to image_size: (H, W, 3) uint8."""
    aug = config.augment
    size = int(rng.integers(aug.sides[0], aug.sides[1] + 1))
    image = _background(rng, size, aug.white)  # (S, S, 3)
    cell = size / GRID
    for obj in objects:
        cx, cy = (np.array([obj.col, obj.row]) + 0.5 + rng.uniform(-aug.centre, aug.centre, size=2)) * cell
        radius = SIZE_RADIUS[obj.size] * cell * (1 + rng.uniform(-aug.radius, aug.radius))
        colour = np.clip(np.array(COLOURS[obj.colour], dtype=float) + rng.uniform(-aug.shade, aug.shade, 3), 0, 255)
        if rng.random() < aug.outline:  # a dark shape, then the fill inside it
            width = max(1.0, size / 96) * rng.uniform(0.7, 1.3)
            _paint(image, obj.shape, cx, cy, radius, rng.uniform(0, 60, 3), 2)
            radius = max(radius - width, radius / 2)
        _paint(image, obj.shape, cx, cy, radius, colour, 2)
    picture = Image.fromarray(np.clip(image + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < aug.jpeg:
        picture = jpeg_round_trip(picture, int(rng.integers(60, 96)))
    return np.asarray(to_model_size(picture, config.image_size))


# ---------------------------------------------------------------- text


def _place(obj: SceneObject) -> str:
    """Where an object is, as a phrase: 'at the top left', 'on the left', 'in the centre'."""
    if obj.position == "centre":
        return "in the centre"
    if obj.position in ("left", "right"):
        return f"on the {obj.position}"
    return f"at the {obj.position}"


def caption(objects: list[SceneObject], places: bool = True) -> str:
    """'a large red circle at the top left and a small blue square in the centre' (reading order; places optional)."""
    parts = [f"a {o.size} {o.name} {_place(o)}" if places else f"a {o.size} {o.name}" for o in objects]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _a(noun: str) -> str:
    """'a red circle', 'an orange square'."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _ref(obj: SceneObject, objects: list[SceneObject]) -> str:
    """The shortest unambiguous name: 'circle' when it is the only circle, else 'red circle'."""
    return obj.shape if sum(o.shape == obj.shape for o in objects) == 1 else obj.name


def conversation(objects: list[SceneObject], rng: np.random.Generator, config: WorldConfig = WorldConfig(),
                 balanced_counts: bool = False) -> list[tuple[str, str, str]]:
    """One (question_type, question, answer) per type that this scene makes uniquely answerable.

    `balanced_counts` (training only, lesson 07): a count question about a shape or a colour first picks an answer
    among those the scene allows (`_balanced_pick`), so "one" no longer makes up most of them.
    """
    pick = lambda items: items[int(rng.integers(len(items)))]  # noqa: E731
    turns = []

    target = pick(objects)  # colour: name it by shape, adding its place when the shape repeats
    shape_ref = target.shape if _ref(target, objects) == target.shape else f"{target.shape} {_place(target)}"
    turns.append(("colour", f"what colour is the {shape_ref}?", target.colour))

    target = pick(objects)
    turns.append(("shape", f"what shape is {_place(target)}?", target.shape))

    target = pick(objects)
    turns.append(("position", f"where is the {_ref(target, objects)}?", target.position))

    kind = pick(["all", "shape", "colour"])
    if kind == "all":
        question, count = "how many shapes are there?", len(objects)
    elif kind == "shape":
        shape = (_balanced_pick(config.shapes, [o.shape for o in objects], rng) if balanced_counts else
                 pick([o.shape for o in objects]) if rng.random() < 0.7 else pick(config.shapes))
        question, count = f"how many {PLURALS[shape]} are there?", sum(o.shape == shape for o in objects)
    else:
        colour = (_balanced_pick(config.colours, [o.colour for o in objects], rng) if balanced_counts else
                  pick([o.colour for o in objects]) if rng.random() < 0.7 else pick(config.colours))
        question, count = f"how many {colour} shapes are there?", sum(o.colour == colour for o in objects)
    turns.append(("count", question, NUMBERS[count]))

    present = {o.name for o in objects}
    if rng.random() < 0.5:
        turns.append(("exists", f"is there {_a(pick(objects).name)}?", "yes"))
    else:  # a near miss: same colour or same shape as something in the scene, when possible
        other = pick(objects)
        near = [f"{c} {s}" for c in config.colours for s in config.shapes
                if (c == other.colour or s == other.shape) and f"{c} {s}" not in present]
        absent = [f"{c} {s}" for c in config.colours for s in config.shapes if f"{c} {s}" not in present]
        turns.append(("exists", f"is there {_a(pick(near or absent))}?", "no"))

    target = pick(objects)
    turns.append(("size", f"what size is the {_ref(target, objects)}?", target.size))

    small = [o for o in objects if o.size == "small"]
    lone_small = [o for o in small if sum(s.shape == o.shape for s in small) == 1]
    if lone_small:
        target = pick(lone_small)
        turns.append(("small", f"what colour is the small {target.shape}?", target.colour))

    cells = {(o.row, o.col): o for o in objects}
    pairs = [(o, d, cells[o.row + dr, o.col + dc]) for o in objects for d, (dr, dc) in DIRECTIONS.items()
             if (o.row + dr, o.col + dc) in cells]
    if pairs:
        target, direction, neighbour = pairs[int(rng.integers(len(pairs)))]
        turns.append(("neighbour", f"what is {direction} the {_ref(target, objects)}?", neighbour.name))
    return turns


def _balanced_pick(names: tuple[str, ...], present: list[str], rng: np.random.Generator) -> str:
    """A name to count: first a count the scene allows (two or more weighted 4, since few scenes allow them; zero and
    one weighted 1), then a name with that count."""
    by_count: dict[int, list[str]] = {}
    for name in names:
        by_count.setdefault(present.count(name), []).append(name)
    counts = sorted(by_count)
    weights = np.array([4.0 if count >= 2 else 1.0 for count in counts])
    chosen = by_count[counts[int(rng.choice(len(counts), p=weights / weights.sum()))]]
    return chosen[int(rng.integers(len(chosen)))]


def vocabulary() -> list[str]:
    """Every token that a caption, question or answer of the shapes world can contain, sorted."""
    templates = [
        "a an and , at the in on",  # captions
        "what colour is the ? shape where how many are there shapes is there size small of",  # questions
        "yes no",
        " ".join(SHAPES), " ".join(PLURALS.values()), " ".join(COLOURS), " ".join(SIZES),
        " ".join(POSITIONS), " ".join(NUMBERS), " ".join(DIRECTIONS),
    ]
    return sorted({word for line in templates for word in split_words(line)})


def shapes_tokenizer() -> Tokenizer:
    """The tokenizer of the shapes world's language: the special tokens, punctuation, then `vocabulary()`."""
    return Tokenizer.from_words(vocabulary())


# ---------------------------------------------------------------- datasets


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def make_example(seed: int, index: int, config: WorldConfig = WorldConfig()) -> dict:
    """Example `index` of the split with base `seed`: image PNG, caption, conversation, objects."""
    rng = np.random.default_rng([seed, index])  # each example independent: a prefix of a split is a smaller split
    objects = sample_scene(rng, config)
    image = draw_scene(objects, config, rng)
    turns = conversation(objects, rng, config)
    return example_row(index, objects, turns, image)


def example_row(index: int, objects: list[SceneObject], turns: list[tuple[str, str, str]], image: np.ndarray) -> dict:
    """One row of a split (the columns of `features()`) from a scene, its conversation and its (H, W, 3) uint8 image."""
    return {
        "image": {"bytes": _png(image), "path": None},
        "caption": caption(objects),
        "questions": [q for _, q, _ in turns],
        "answers": [a for _, _, a in turns],
        "question_types": [t for t, _, _ in turns],
        "objects": [asdict(o) for o in objects],
        "index": index,
    }


def features():
    """The `datasets.Features` of a shapes-world split."""
    from datasets import Features, List, Value
    from datasets import Image as ImageFeature

    obj = {"shape": Value("string"), "colour": Value("string"), "size": Value("string"), "row": Value("int8"),
           "col": Value("int8")}
    return Features({
        "image": ImageFeature(),
        "caption": Value("string"),
        "questions": List(Value("string")),
        "answers": List(Value("string")),
        "question_types": List(Value("string")),
        "objects": List(obj),
        "index": Value("int32"),
    })


def _draw_examples(seed: int, start: int, stop: int, config: Any, make: Callable[[int, int, Any], dict]) -> list[dict]:
    return [make(seed, i, config) for i in range(start, stop)]


def generate_dataset(n: int, seed: int = 0, config: Any = WorldConfig(), progress: bool = False,
                     workers: int | None = None, make: Callable[[int, int, Any], dict] = make_example):
    """Draw n examples from `seed` into a `datasets.Dataset` (in memory; see `load_split` for the cache).

    make: draws row `index` as `make(seed, index, config)` (default `make_example`, with a WorldConfig; a module-level
    function, so worker processes can import it). workers: processes drawing at once (default: one per CPU core for
    4,000 examples or more, else 1); every example depends only on (seed, index), so the rows are the same for any
    number of workers.
    """
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import nullcontext
    from multiprocessing import get_context

    from datasets import Dataset
    from tqdm.auto import tqdm

    if n <= 0:
        raise ValueError(f"n must be a positive number of examples, got {n}")
    workers = workers or ((os.cpu_count() or 1) if n >= 4000 else 1)
    chunks = [(seed, start, min(start + 500, n), config, make) for start in range(0, n, 500)]
    rows = []
    # "spawn": a fresh interpreter per worker, safe whatever threads the parent (a notebook kernel, torch) runs
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext() as pool:
        drawn = (pool.map(_draw_examples, *zip(*chunks, strict=True)) if pool
                 else (_draw_examples(*chunk) for chunk in chunks))
        with tqdm(total=n, desc="drawing shapes", disable=not progress) as bar:
            for part in drawn:
                rows += part
                bar.update(len(part))
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    return Dataset.from_dict(columns, features=features())


def data_dir() -> Path:
    """Where splits are cached: <runtime.cache_dir()>/data."""
    return cache_dir() / "data"


def split_path(split: str, n: int, config: WorldConfig = WorldConfig(), renderer: dict | None = None) -> Path:
    """The cache folder of a split's first n examples: <data_dir()>/<split>-<n>-<hash of the world and DATA_VERSION>.

    renderer: the settings of another renderer than `draw_scene` (drawn.py's), hashed too; None for this module's own
    splits, whose folder names stay as they were.
    """
    world = added_later(asdict(config), {"augment": None, "layout": "aligned"})  # plain, aligned: names as before
    settings = {"split": split, "n": n, "config": world, "version": DATA_VERSION}
    digest = settings_digest(settings if renderer is None else {**settings, "renderer": renderer})
    return data_dir() / f"{split}-{n}-{digest}"


def cached_split(path: Path, draw: Callable[[], Any]):
    """The `datasets.Dataset` saved at `path`, or `draw()`'s, saved there first (a reader never sees half a split)."""
    from datasets import load_from_disk

    if not path.exists():
        dataset = draw()
        with building(path) as folder:
            dataset.save_to_disk(str(folder))
    return load_from_disk(str(path))


def load_split(split: str = "train", n: int = 1000, config: WorldConfig = WorldConfig(), progress: bool = True):
    """The split's first n examples as a `datasets.Dataset`, from the cache or drawn and cached once."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_SEEDS)}")
    return cached_split(split_path(split, n, config), lambda: generate_dataset(n, SPLIT_SEEDS[split], config, progress))


def scene_objects(row: dict) -> list[SceneObject]:
    """The objects of a dataset row as `SceneObject`s."""
    return [SceneObject(**o) for o in row["objects"]]


def images_to_uint8(images: list) -> torch.Tensor:
    """PIL images or (H, W, 3) uint8 arrays -> (B, 3, H, W) uint8, 4x smaller than float pixels."""
    rgb = lambda image: image if image.mode == "RGB" else image.convert("RGB")  # noqa: E731  (a copy only when needed)
    # (B, H, W, 3)
    array = np.stack([np.asarray(rgb(image) if isinstance(image, Image.Image) else image) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2)  # (B, 3, H, W)


def images_to_tensor(images: list) -> torch.Tensor:
    """PIL images or (H, W, 3) uint8 arrays -> (B, 3, H, W) float32 in [0, 1]."""
    return images_to_uint8(images).float().div(255.0)  # (B, 3, H, W)


def text_corpus(dataset) -> list[str]:
    """Language-model text: every caption, and every 'question answer' line."""
    lines = []
    for row in dataset.select_columns(["caption", "questions", "answers"]):
        lines.append(row["caption"])
        lines.extend(f"{q} {a}" for q, a in zip(row["questions"], row["answers"], strict=False))
    return lines
