"""The shapes world: determinism, validation, captions, and questions with exactly one right answer."""

import re

import numpy as np
import pytest
import torch
from datasets import Image, load_from_disk

from mobilevlm_mini import data
from mobilevlm_mini.__main__ import build_parser, main
from mobilevlm_mini.data import SceneObject, WorldConfig


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path / "data"))


def test_same_seed_same_bytes():
    first, second = data.generate_dataset(12, seed=7), data.generate_dataset(12, seed=7)
    assert first.features == second.features
    images = lambda ds: [row["bytes"] for row in ds.cast_column("image", Image(decode=False))["image"]]  # noqa: E731  (the PNG bytes)
    assert images(first) == images(second)
    assert first.remove_columns("image").to_list() == second.remove_columns("image").to_list()
    other = data.generate_dataset(12, seed=8)
    assert images(first) != images(other)
    in_parallel = data.generate_dataset(12, seed=7, workers=2)  # worker processes draw the same rows, in order
    assert in_parallel.data.table.equals(first.data.table)


def test_load_split_caches_and_prefixes_agree(tmp_path):
    small = data.load_split("validation", 6, progress=False)
    assert len(list((tmp_path / "data").iterdir())) == 1
    again = data.load_split("validation", 6, progress=False)
    assert small["caption"] == again["caption"]
    bigger = data.load_split("validation", 10, progress=False)  # example i does not depend on n
    assert bigger["caption"][:6] == small["caption"]
    test = data.load_split("test", 6, progress=False)
    assert test["caption"] != small["caption"]
    assert len(set(data.SPLIT_SEEDS.values())) == len(data.SPLIT_SEEDS)


def test_rows_hold_image_caption_conversation_and_objects():
    row = data.generate_dataset(3, seed=0)[0]
    assert row["image"].size == (48, 48) and row["image"].mode == "RGB"
    assert len(row["questions"]) == len(row["answers"]) == len(row["question_types"]) >= 5
    assert set(row["objects"][0]) == {"shape", "colour", "size", "row", "col"}
    images = data.images_to_tensor([row["image"]])
    assert images.shape == (1, 3, 48, 48) and images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1


def test_caption_reads_in_order():
    objects = [SceneObject("circle", "red", "large", 0, 0), SceneObject("square", "blue", "small", 1, 1),
               SceneObject("cross", "orange", "small", 1, 2)]
    assert data.caption(objects) == ("a large red circle at the top left, a small blue square in the centre "
                                     "and a small orange cross on the right")
    assert data.caption(objects[:1]) == "a large red circle at the top left"


def test_drawing_is_anti_aliased_and_sized():
    objects = [SceneObject("circle", "red", "large", 1, 1)]
    config = WorldConfig(image_size=48)
    image = data.draw_scene(objects, config, np.random.default_rng(0))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert np.array_equal(image, data.draw_scene(objects, config, np.random.default_rng(0)))
    centre, corner = image[24, 24].astype(int), image[0, 0].astype(int)
    assert np.abs(centre - data.COLOURS["red"]).max() <= 1 and corner.min() > 200
    red = image[..., 0].astype(int) - image[..., 1]  # ~0 on the background, ~180 inside
    assert ((red > 20) & (red < 160)).sum() > 10, "edge pixels should blend shape and background"


def test_vocabulary_covers_every_text():
    vocab = set(data.vocabulary())
    corpus = data.text_corpus(data.generate_dataset(200, seed=1))
    assert {w for line in corpus for w in data.split_words(line)} <= vocab
    assert data.split_words("what colour is the red circle ?") == ["what", "colour", "is", "the", "red", "circle", "?"]
    assert {"circle", "red", "large", "centre", "four", "yes", "?", ","} <= vocab


def _matches(objects, words):
    """Objects whose colour / shape / size / place agree with every attribute named in `words`."""
    text = " " + " ".join(words) + " "
    found = objects
    for attr, values in [("colour", data.COLOURS), ("shape", data.SHAPES), ("size", data.SIZES)]:
        named = [v for v in values if f" {v} " in text]
        if named:
            found = [o for o in found if getattr(o, attr) == named[0]]
    place = re.search(r" (?:at|on|in) the (.+?) $", text)
    if place:
        found = [o for o in found if o.position == place.group(1)]
    return found


def _answer(objects, question):
    """An independent reading of each question; asserts it refers to exactly one thing."""
    words = data.split_words(question)[:-1]  # drop "?"
    if question.startswith("how many"):
        noun = words[2:-2]
        if noun == ["shapes"]:
            return data.NUMBERS[len(objects)]
        if noun[-1] == "shapes":
            return data.NUMBERS[sum(o.colour == noun[0] for o in objects)]
        shape = next(s for s, p in data.PLURALS.items() if p == noun[0])
        return data.NUMBERS[sum(o.shape == shape for o in objects)]
    if question.startswith("is there"):
        return "yes" if _matches(objects, words[3:]) else "no"
    if question.startswith("what is"):
        direction = next(d for d in data.DIRECTIONS if question.startswith(f"what is {d} the"))
        (target,) = _matches(objects, words[3 + len(direction.split()) :])
        dr, dc = data.DIRECTIONS[direction]
        (neighbour,) = [o for o in objects if (o.row, o.col) == (target.row + dr, target.col + dc)]
        return neighbour.name
    if question.startswith("what shape is"):
        (target,) = _matches(objects, words[3:])
        return target.shape
    (target,) = _matches(objects, words[3:])  # what colour / what size / where is
    return {"colour": target.colour, "size": target.size, "is": target.position}[words[1]]


def test_every_question_has_exactly_one_right_answer():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        objects = data.sample_scene(rng)
        for kind, question, answer in data.conversation(objects, rng):
            seen.add(kind)
            assert _answer(objects, question) == answer, (question, answer, objects)
            assert 1 <= len(answer.split()) <= 2
    assert seen == set(data.QUESTION_TYPES)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"shapes": ("circle", "hexagon")}, r"unknown shape 'hexagon'; expected one of circle, square"),
        ({"colours": ("red", "pink")}, r"unknown colour 'pink'; expected one of red"),
        ({"image_size": 0}, r"image_size must be a positive number of pixels, got 0"),
        ({"image_size": -64}, r"got -64"),
        ({"max_objects": 10}, r"max_objects=10 cannot fit: a 3x3 grid"),
        ({"shapes": ("circle",), "colours": ("red",), "max_objects": 2}, r"holds at most 1 distinct objects"),
        ({"min_objects": 3, "max_objects": 2}, r"min_objects=3, max_objects=2"),
        ({"layout": "free"}, r"unknown layout 'free'; expected one of aligned, straddle"),
        ({"layout": "straddle", "augment": data.Augment()}, r"use it with layout 'aligned'"),
    ],
)
def test_bad_world_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)


def test_straddle_layout_crosses_token_blocks_and_keeps_the_scene():
    """Lesson 08's second world: same scenes and texts, centres anywhere in the middle of their cell, so that most
    objects cross the borders of the 2 x 2 patch blocks LDP merges; never cut by the edge, never overlapping."""
    rng = np.random.default_rng(0)
    crossing = {"small": [], "large": []}
    for _ in range(300):
        objects = data.sample_scene(rng)
        centres = data.place_objects(objects, "straddle", rng)  # (n, 2) in cell units
        radii = np.array([data.SIZE_RADIUS[o.size] for o in objects])
        for obj, (x, y), r in zip(objects, centres, radii, strict=True):
            assert (int(x), int(y)) == (obj.col, obj.row)  # the centre stays in its cell: questions stay true
            assert r <= x <= data.GRID - r and r <= y <= data.GRID - r  # inside the picture
            crossing[obj.size].append(any(np.floor(v - r) != np.floor(v + r) for v in (x, y)))
        apart = np.linalg.norm(centres[:, None] - centres[None], axis=-1) - radii[:, None] - radii[None]
        assert (apart[~np.eye(len(objects), dtype=bool)] > 0).all()
    assert np.mean(crossing["large"]) > 0.8 and np.mean(crossing["small"]) > 0.3
    aligned = data.place_objects(objects, "aligned", rng)
    assert (np.abs(aligned % 1 - 0.5) <= data.LAYOUTS["aligned"]).all()  # the default keeps objects centred
    plain, straddle = data.generate_dataset(4, seed=5), data.generate_dataset(4, seed=5, config=WorldConfig(
        layout="straddle"))
    assert plain.remove_columns("image").to_list() == straddle.remove_columns("image").to_list()
    assert not np.array_equal(np.asarray(plain[0]["image"]), np.asarray(straddle[0]["image"]))
    assert data.split_path("test", 8) != data.split_path("test", 8, WorldConfig(layout="straddle"))


def test_bad_objects_and_splits():
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        SceneObject("blob", "red", "large", 0, 0)
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        SceneObject("circle", "red", "huge", 0, 0)
    with pytest.raises(ValueError, match=r"cell \(3, 0\) is outside the 3x3 grid"):
        SceneObject("circle", "red", "large", 3, 0)
    with pytest.raises(ValueError, match="unknown split 'dev'; expected one of train, validation, test"):
        data.load_split("dev", 5)
    with pytest.raises(ValueError, match="n must be a positive number of examples, got 0"):
        data.generate_dataset(0)


def test_command_line_builds_a_dataset(tmp_path, capsys):
    assert main(["data", "--out", str(tmp_path / "shapes"), "--n", "5", "--seed", "3", "--size", "32"]) == 0
    dataset = load_from_disk(str(tmp_path / "shapes"))
    assert len(dataset) == 5 and dataset[0]["image"].size == (32, 32)
    assert "saved 5 examples" in capsys.readouterr().out


def test_command_line_draws_at_the_courses_image_size():
    assert build_parser().parse_args(["data", "--out", "shapes"]).size == WorldConfig().image_size


def test_augmented_pictures_keep_the_scene_and_its_texts_and_vary_the_drawing():
    """Augment changes only the picture: the same scene, caption and conversation as the plain world's, a 48 px RGB
    image, centres further from their cells' centres, some backgrounds plain white; the plain splits keep their
    cache folders."""
    plain_world, world = WorldConfig(), WorldConfig(augment=data.Augment())
    offsets, whites = [], 0
    for index in range(120):
        plain, augmented = data.make_example(7, index, plain_world), data.make_example(7, index, world)
        for key in ("caption", "questions", "answers", "question_types", "objects"):
            assert plain[key] == augmented[key]
        image = np.asarray(data.images_to_uint8([Image().decode_example(augmented["image"])])[0].permute(1, 2, 0))
        assert image.shape == (48, 48, 3)
        whites += bool((image[:2, :2] >= 250).all())
        objects = augmented["objects"]
        if len(objects) == 1 and objects[0]["shape"] != "triangle":  # a triangle's centroid is not its centre
            o = objects[0]
            colourful = np.abs(image.astype(int) - image.astype(int).mean(axis=2, keepdims=True)).sum(axis=2) > 60
            ys, xs = np.nonzero(colourful)
            dx, dy = xs.mean() + 0.5 - (o["col"] + 0.5) * 16, ys.mean() + 0.5 - (o["row"] + 0.5) * 16
            offsets.append(max(abs(dx), abs(dy)) / 16)
    assert max(offsets) > 0.08  # the plain world stays within 0.06 of a cell
    assert whites > 5
    assert data.split_path("test", 1000, plain_world) != data.split_path("test", 1000, world)
    assert data.split_path("test", 1000).name.startswith("test-1000-")


@pytest.mark.parametrize("kwargs, message", [
    ({"centre": 0.6}, "Augment.centre must be between 0 and 0.49"),
    ({"shade": -1}, "Augment.shade must be an RGB shift"),
    ({"sides": (4, 8)}, "Augment.sides must be"),
])
def test_bad_augment(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        data.Augment(**kwargs)
