"""A second renderer of the shapes world: each scene drawn as a person would draw it in a paint program.

`data.draw_scene` draws every image the same way: 48 px, a tinted background with a faint gradient,
exact colours, centres within +-6% of a cell, supersampled edges. This module draws the same kind of
scenes (`data.sample_scene`), with the same conversations (`data.conversation`), independently: with
PIL's `ImageDraw` (no supersampling) on a canvas of random size, a plain light background, every
colour, centre and radius a little off, a dark outline on some shapes, and a JPEG round trip. The
picture then takes the path of `python -m mobilevlm_mini ask` (`photos.to_model_size`) down to the
world's image size. A model that learnt the world rather than one renderer should score on this
"drawn" split about as it does on the test split.

Public API
- `DrawnConfig`: the ranges a drawing varies in, and the `WorldConfig` of its scenes; validated on creation.
- `paint_scene(objects, rng, config)` -> PIL image at a random canvas size; `draw_picture(objects, rng, config)`:
  the same after a JPEG round trip at a random quality (`photos.jpeg_round_trip`), as a person would save it.
- `make_drawn_example(seed, index, config)` -> one row with `data.make_example`'s columns, image at the world's size.
- `DRAWN_SPLIT` ("drawn"), `DRAWN_SEED`, `DRAWN_VERSION`; `drawn_split_path(n, config)`;
  `load_drawn_split(n, config)` -> the split's first n examples, cached like data.py's splits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobilevlm_mini.data import (
    COLOURS,
    GRID,
    SIZE_RADIUS,
    SceneObject,
    WorldConfig,
    cached_split,
    conversation,
    example_row,
    generate_dataset,
    sample_scene,
    split_path,
)
from mobilevlm_mini.photos import jpeg_round_trip, to_model_size

DRAWN_SPLIT = "drawn"
DRAWN_SEED = 4_000  # a base seed of its own: data.SPLIT_SEEDS holds 1_000, 2_000 and 3_000
DRAWN_VERSION = 1  # bump when the drawing changes, so old caches are not reused

# corners in units of the shape's radius around its centre (v points down), as data._inside defines the shapes
_A, _B = 0.3, 0.95  # the cross: two bars of half-width 0.3 and half-length 0.95
POLYGONS = {
    "square": ((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)),
    "diamond": ((0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)),
    "triangle": ((0.0, -1.0), (1.75 * 0.58, 0.75), (-1.75 * 0.58, 0.75)),  # apex up; half-width 0.58 (v + 1)
    "cross": ((-_A, -_B), (_A, -_B), (_A, -_A), (_B, -_A), (_B, _A), (_A, _A),
              (_A, _B), (-_A, _B), (-_A, _A), (-_B, _A), (-_B, -_A), (-_A, -_A)),
}  # the circle is an ellipse


@dataclass(frozen=True)
class DrawnConfig:
    """How far a hand-drawn picture may stray from the world's: canvas, background, colours, places, outline, JPEG."""

    world: WorldConfig = field(default_factory=WorldConfig)  # the scenes, texts and stored image size (48 px)
    min_side: int = 32  # canvas side in pixels, uniform in [min_side, max_side] per image
    max_side: int = 512
    white_background: float = 0.5  # probability of plain white; else each channel uniform in [min_background, 255]
    min_background: int = 200
    colour_jitter: int = 25  # each RGB channel of an object's colour shifted by up to +- this
    centre_jitter: float = 0.15  # centre up to +- this fraction of a cell from the cell's centre, in x and in y
    radius_jitter: float = 0.15  # radius up to +- this fraction of the world's radius for the object's size
    outline_probability: float = 0.5  # probability that an object has a dark outline
    max_outline_value: int = 60  # an outline's RGB channels are each uniform in [0, max_outline_value]
    outline_width: float = 1 / 128  # outline width as a fraction of the canvas side (at least 1 px)
    min_quality: int = 60  # JPEG quality, uniform in [min_quality, max_quality]
    max_quality: int = 95

    def __post_init__(self):
        if not isinstance(self.world, WorldConfig):
            raise ValueError(f"world must be a data.WorldConfig, got {type(self.world).__name__}")
        if not 16 <= self.min_side <= self.max_side:
            raise ValueError(f"need 16 <= min_side <= max_side (canvas sides in pixels), "
                             f"got min_side={self.min_side}, max_side={self.max_side}")
        _check_range("white_background", self.white_background, 0, 1, "a probability")
        _check_range("min_background", self.min_background, 0, 255, "an RGB channel value")
        _check_range("colour_jitter", self.colour_jitter, 0, 255, "an RGB shift")
        _check_range("centre_jitter", self.centre_jitter, 0, 0.49, "a fraction of a cell; the centre stays in it")
        _check_range("radius_jitter", self.radius_jitter, 0, 0.99, "a fraction of the radius")
        _check_range("outline_probability", self.outline_probability, 0, 1, "a probability")
        _check_range("max_outline_value", self.max_outline_value, 0, 255, "an RGB channel value")
        _check_range("outline_width", self.outline_width, 0, 0.1, "a fraction of the canvas side")
        if not 1 <= self.min_quality <= self.max_quality <= 100:
            raise ValueError(f"need 1 <= min_quality <= max_quality <= 100 (JPEG qualities), "
                             f"got min_quality={self.min_quality}, max_quality={self.max_quality}")


def _check_range(name: str, value: float, low: float, high: float, what: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} ({what}), got {value}")


def paint_scene(objects: list[SceneObject], rng: np.random.Generator,
                config: DrawnConfig = DrawnConfig()) -> Image.Image:
    """Draw the objects with `ImageDraw` on a canvas of random side, off by a little everywhere: RGB (side, side)."""
    side = int(rng.integers(config.min_side, config.max_side + 1))
    background = ((255, 255, 255) if rng.random() < config.white_background
                  else tuple(int(c) for c in rng.integers(config.min_background, 256, size=3)))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    cell = side / GRID
    width = max(1, round(config.outline_width * side))
    for obj in objects:
        offset = rng.uniform(-config.centre_jitter, config.centre_jitter, size=2)  # (x, y) in cells
        cx, cy = (np.array([obj.col, obj.row]) + 0.5 + offset) * cell  # in pixels; PIL rounds edges to within a pixel
        radius = SIZE_RADIUS[obj.size] * cell * (1 + rng.uniform(-config.radius_jitter, config.radius_jitter))
        shift = rng.integers(-config.colour_jitter, config.colour_jitter + 1, size=3)  # (3,)
        fill = tuple(int(c) for c in np.clip(np.array(COLOURS[obj.colour]) + shift, 0, 255))
        dark = rng.integers(0, config.max_outline_value + 1, size=3)  # drawn always, so the stream does not branch
        outline = tuple(int(c) for c in dark) if rng.random() < config.outline_probability else None
        if obj.shape == "circle":
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill, outline=outline, width=width)
        else:
            corners = [(cx + u * radius, cy + v * radius) for u, v in POLYGONS[obj.shape]]
            draw.polygon(corners, fill=fill, outline=outline, width=width)
    return image


def draw_picture(objects: list[SceneObject], rng: np.random.Generator,
                 config: DrawnConfig = DrawnConfig()) -> Image.Image:
    """`paint_scene`, saved as a JPEG of random quality and read back: what `ask` would be given, at canvas size."""
    image = paint_scene(objects, rng, config)
    return jpeg_round_trip(image, int(rng.integers(config.min_quality, config.max_quality + 1)))


def make_drawn_example(seed: int, index: int, config: DrawnConfig = DrawnConfig()) -> dict:
    """Example `index` of the drawn split with base `seed`: `data.make_example`'s columns, image at the world's size."""
    rng = np.random.default_rng([seed, index])
    objects = sample_scene(rng, config.world)
    turns = conversation(objects, rng, config.world)
    picture = draw_picture(objects, np.random.default_rng([seed, index, 1]), config)  # its own stream
    image = to_model_size(picture, config.world.image_size)  # the resize of `ask`: (size, size) RGB
    return example_row(index, objects, turns, np.asarray(image))


def drawn_split_path(n: int, config: DrawnConfig = DrawnConfig()) -> Path:
    """The cache folder of the drawn split's first n examples (the renderer's settings and version in its hash)."""
    settings = {key: value for key, value in asdict(config).items() if key != "world"}
    return split_path(DRAWN_SPLIT, n, config.world, renderer={"drawn": settings, "version": DRAWN_VERSION})


def load_drawn_split(n: int = 1000, config: DrawnConfig = DrawnConfig(), progress: bool = True):
    """The drawn split's first n examples as a `datasets.Dataset`, from the cache or drawn and cached once."""
    if n <= 0:
        raise ValueError(f"n must be a positive number of examples, got {n}")
    return cached_split(drawn_split_path(n, config),
                        lambda: generate_dataset(n, DRAWN_SEED, config, progress, make=make_drawn_example))
