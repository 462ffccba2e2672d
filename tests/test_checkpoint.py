"""Checkpoints: round trip, atomic writes, and errors that say what is wrong."""

import json
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from mobilevlm_mini.checkpoint import (
    building,
    config_mismatch,
    config_to_dict,
    load_checkpoint,
    load_config,
    save_checkpoint,
)


@dataclass
class Inner:
    width: int = 4
    names: tuple[str, ...] = ("a", "b")


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    depth: int = 2
    act: str = "gelu"


def make(config: Outer) -> nn.Module:
    return nn.Sequential(*(nn.Linear(config.inner.width, config.inner.width) for _ in range(config.depth)))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    config = Outer(Inner(width=3, names=("x",)), depth=2)
    model = make(config)
    save_checkpoint(tmp_path / "ckpt", model, config)
    # no temp files left
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert load_config(tmp_path / "ckpt", Outer) == config  # nested dataclass and tuple restored
    torch.manual_seed(1)
    loaded = load_checkpoint(tmp_path / "ckpt", make(config), config)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_mismatch_names_every_field(tmp_path):
    config = Outer()
    save_checkpoint(tmp_path, make(config), config)
    other = Outer(Inner(width=4, names=("a", "c")), depth=3)
    with pytest.raises(ValueError, match="saved with another config") as error:
        load_checkpoint(tmp_path, make(other), other)
    message = str(error.value)
    assert "depth: saved 2, expected 3" in message and "inner.names: saved ['a', 'b'], expected ['a', 'c']" in message
    assert "act" not in message and "width" not in message


def test_a_field_added_since_the_checkpoint_counts_as_its_default(tmp_path):
    """An old config.json without a newer field loads while the field keeps its default, and not when it does not."""
    config = Outer()
    save_checkpoint(tmp_path, make(config), config)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["act"]  # written before `act` existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    load_checkpoint(tmp_path, make(config), config)
    with pytest.raises(ValueError, match="act: saved 'gelu', expected 'relu'"):
        load_checkpoint(tmp_path, make(config), Outer(act="relu"))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config.json in .*expected a checkpoint folder"):
        load_checkpoint(tmp_path, make(Outer()), Outer())
    (tmp_path / "config.json").write_text('{"inner": {"width": 4, "names": ["a", "b"]}, "depth": 2, "act": "gelu"}')
    with pytest.raises(FileNotFoundError, match="no model.safetensors in"):
        load_checkpoint(tmp_path, make(Outer()), Outer())


def test_config_helpers():
    assert config_to_dict(Outer()) == {"inner": {"width": 4, "names": ["a", "b"]}, "depth": 2, "act": "gelu"}
    assert (config_mismatch({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 0})
            == ["b.c: saved 2, expected 3", "d: saved '(absent)', expected 0"])
    with pytest.raises(ValueError, match="expected a config dataclass, got dict"):
        config_to_dict({"a": 1})


def test_building_publishes_whole_folders_and_keeps_the_first(tmp_path):
    path = tmp_path / "pieces" / "a"
    with building(path) as folder:
        assert folder.parent == path.parent and not path.exists()  # built beside it, invisible until done
        (folder / "x.txt").write_text("first")
    assert (path / "x.txt").read_text() == "first"
    with building(path) as folder:  # a second builder of the same piece: the first one's stays
        (folder / "x.txt").write_text("second")
    assert (path / "x.txt").read_text() == "first"
    with pytest.raises(RuntimeError), building(tmp_path / "pieces" / "b") as folder:
        raise RuntimeError("the build failed")
    assert sorted(p.name for p in path.parent.iterdir()) == ["a"]  # no half-built or leftover folders
