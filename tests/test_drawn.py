"""The drawn split: a second renderer of the shapes world; deterministic, data.py's columns, `ask`'s resize."""

import json
from dataclasses import asdict

import numpy as np
import pytest
from datasets import Image as ImageFeature

from mobilevlm_mini import data, drawn
from mobilevlm_mini.__main__ import build_parser, main
from mobilevlm_mini.checkpoint import save_checkpoint, settings_digest
from mobilevlm_mini.config import TrainConfig, VLMConfig
from mobilevlm_mini.data import SceneObject, shapes_tokenizer
from mobilevlm_mini.drawn import DRAWN_SEED, DrawnConfig, make_drawn_example
from mobilevlm_mini.language import preset
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.photos import load_image
from mobilevlm_mini.train import load_images
from mobilevlm_mini.vision import ViTConfig


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path / "data"))


def test_same_seed_and_index_same_bytes():
    first, again = make_drawn_example(DRAWN_SEED, 3), make_drawn_example(DRAWN_SEED, 3)
    assert first == again
    assert make_drawn_example(DRAWN_SEED, 4)["image"]["bytes"] != first["image"]["bytes"]
    assert make_drawn_example(DRAWN_SEED + 1, 3)["image"]["bytes"] != first["image"]["bytes"]
    assert DRAWN_SEED not in data.SPLIT_SEEDS.values()


def test_rows_have_make_examples_columns_and_48px_rgb_images():
    row = make_drawn_example(DRAWN_SEED, 0)
    assert list(row) == list(data.make_example(0, 0))
    dataset = data.generate_dataset(3, DRAWN_SEED, DrawnConfig(), make=make_drawn_example)
    assert dataset.features == data.features()
    image = dataset[0]["image"]
    assert image.size == (48, 48) and image.mode == "RGB"
    assert dataset[0]["caption"] == data.caption(data.scene_objects(dataset[0]))


def test_the_stored_image_is_what_ask_reads_from_the_picture(tmp_path):
    config = DrawnConfig()
    rng = np.random.default_rng([DRAWN_SEED, 5])
    objects = data.sample_scene(rng, config.world)
    picture = drawn.draw_picture(objects, np.random.default_rng([DRAWN_SEED, 5, 1]), config)  # as make_drawn_example
    assert config.min_side <= picture.width == picture.height <= config.max_side
    picture.save(tmp_path / "picture.png")
    asked = load_image(tmp_path / "picture.png", 48)  # (3, 48, 48): the path of `ask --image`
    stored = data.images_to_tensor([ImageFeature().decode_example(make_drawn_example(DRAWN_SEED, 5)["image"])])[0]
    assert stored.shape == asked.shape == (3, 48, 48) and np.array_equal(stored.numpy(), asked.numpy())


def centre_offsets(rows: list[dict]) -> np.ndarray:
    """|offset| of each lone object's colour centroid from its cell's centre, in cells (x and y): (2 * rows,)."""
    offsets = []
    for row in rows:
        (obj,) = row["objects"]
        image = np.asarray(ImageFeature().decode_example(row["image"]), dtype=float)  # (48, 48, 3)
        background = np.median(image.reshape(-1, 3), axis=0)  # one shape covers < 10% of the picture
        ys, xs = np.nonzero(np.abs(image - background).max(axis=-1) > 40)
        cell = image.shape[0] / data.GRID
        offsets += [(xs.mean() + 0.5) / cell - obj["col"] - 0.5, (ys.mean() + 0.5) / cell - obj["row"] - 0.5]
    return np.abs(offsets)


def test_centres_vary_beyond_the_numpy_worlds():
    # lone circles, squares, diamonds and crosses: their colour centroid is their centre (a triangle's is not)
    lone = lambda rows: [r for r in rows if len(r["objects"]) == 1 and r["objects"][0]["shape"] != "triangle"]  # noqa: E731
    hand = centre_offsets(lone([make_drawn_example(DRAWN_SEED, i) for i in range(200)]))
    world = centre_offsets(lone([data.make_example(DRAWN_SEED, i) for i in range(200)]))
    assert len(hand) >= 40 and len(world) >= 40
    assert world.max() < 0.08  # data.draw_scene: within +-6% of a cell
    assert hand.max() > 0.11 and np.mean(hand > 0.08) > 0.2  # +-15%: well beyond it, and often
    assert hand.max() < 0.2


def test_a_drawing_strays_in_size_colour_and_canvas():
    config = DrawnConfig(outline_probability=0.0)
    circle = [SceneObject("circle", "red", "large", 1, 1)]
    sides, areas, colours = set(), [], set()
    for seed in range(12):
        picture = np.asarray(drawn.paint_scene(circle, np.random.default_rng(seed), config))  # no JPEG: exact colours
        side = picture.shape[0]
        inside = np.abs(picture.astype(int) - picture[0, 0]).max(axis=-1) > 0  # (side, side)
        sides.add(side)
        areas.append(inside.sum() / (np.pi * (data.SIZE_RADIUS["large"] * side / data.GRID) ** 2))
        colours.add(tuple(picture[side // 2, side // 2]))
    assert len(sides) == 12 and all(32 <= s <= 512 for s in sides)
    assert 0.6 < min(areas) < 0.95 < 1.05 < max(areas) < 1.45  # radius +-15%: area x (0.85^2 ... 1.15^2), roughly
    red = np.array(data.COLOURS["red"])
    assert len(colours) == 12 and all(np.abs(np.array(rgb, dtype=int) - red).max() <= 25 for rgb in colours)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_side": 8}, "16 <= min_side <= max_side"),
    ({"min_side": 300, "max_side": 200}, "min_side=300, max_side=200"),
    ({"white_background": 1.5}, "white_background must be between 0 and 1 (a probability), got 1.5"),
    ({"min_background": 300}, "min_background must be between 0 and 255"),
    ({"colour_jitter": -1}, "colour_jitter must be between 0 and 255"),
    ({"centre_jitter": 0.6}, "centre_jitter must be between 0 and 0.49 (a fraction of a cell"),
    ({"radius_jitter": 1.0}, "radius_jitter must be between 0 and 0.99"),
    ({"outline_probability": -0.1}, "outline_probability must be between 0 and 1"),
    ({"outline_width": 0.5}, "outline_width must be between 0 and 0.1"),
    ({"min_quality": 0}, "1 <= min_quality <= max_quality <= 100"),
    ({"max_quality": 101}, "got min_quality=60, max_quality=101"),
    ({"world": "large"}, "world must be a data.WorldConfig, got str"),
])
def test_bad_config_names_the_field_and_the_range(kwargs, message):
    with pytest.raises(ValueError) as error:
        DrawnConfig(**kwargs)
    assert message in str(error.value)


def test_the_split_is_cached_beside_the_others_without_renaming_them(tmp_path):
    first = load_images("drawn", 3)
    assert [p.name for p in (tmp_path / "data" / "data").iterdir()] == [drawn.drawn_split_path(3).name]
    assert drawn.drawn_split_path(3).name.startswith("drawn-3-")
    assert load_images("drawn", 3)["caption"] == first["caption"]  # read back
    assert load_images("drawn", 5)["caption"][:3] == first["caption"]  # a prefix of a split is a smaller split
    assert first["caption"] != load_images("test", 3)["caption"]
    assert drawn.drawn_split_path(3) != drawn.drawn_split_path(3, DrawnConfig(outline_probability=0.0))  # in the hash
    # data.py's splits keep their folders: the digest of their settings alone, as before drawn.py
    world = {k: v for k, v in asdict(data.WorldConfig()).items() if k not in ("augment", "layout")}  # added later
    old = settings_digest({"split": "test", "n": 1000, "config": world, "version": data.DATA_VERSION})
    assert data.split_path("test", 1000).name == f"test-1000-{old}"
    with pytest.raises(ValueError, match="unknown split 'nope'; expected one of train, validation, test, drawn"):
        load_images("nope", 3)


def test_eval_takes_the_drawn_split(tmp_path, capsys):
    assert build_parser().parse_args(["eval", "--ckpt", "x", "--split", "drawn"]).split == "drawn"
    # an untrained tiny model saved as a checkpoint: eval needs one, not a good one
    llm = preset("tiny", vocab_size=shapes_tokenizer().vocab_size, hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2)
    vit = ViTConfig(image_size=48, patch_size=12, dim=32, depth=2, heads=2)
    config = TrainConfig(model=VLMConfig(vit=vit, llm=llm), n_test=2)
    save_checkpoint(tmp_path / "ckpt", MobileVLM(config.model), config)
    out = tmp_path / "scores.json"
    assert main(["eval", "--ckpt", str(tmp_path / "ckpt"), "--split", "drawn", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["split"] == "drawn" and result["images"] == 2 and result["n"] >= 10
    assert "on the drawn split, 2 images" in capsys.readouterr().out
