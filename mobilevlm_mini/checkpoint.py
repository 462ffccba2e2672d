"""Checkpoints: a model's weights as model.safetensors and its config dataclass as config.json.

`save_checkpoint(directory, model, config)` writes both files atomically (a temporary file in the
same folder, then `os.replace`), so a crash never leaves half a checkpoint. `load_checkpoint(directory,
model, config)` refuses a checkpoint whose config differs and names every mismatched field.
`load_config(directory, ConfigClass)` rebuilds the (possibly nested) config dataclass from the JSON.
`settings_digest(settings)` names a cache folder after every setting that made what it holds (`added_later` leaves
out settings added since, at their old behaviour, so older folder names still match), and `building(path)` builds
one in a private folder that is renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
RUN_KEYS = ("world_size", "device")  # how a run was made, kept in config.json but not part of the recipe
C = TypeVar("C")


def settings_digest(settings: dict) -> str:
    """10 hex digits of the SHA-1 of `settings` as sorted JSON: a cache key that changes with any setting."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def added_later(settings: dict, defaults: dict) -> dict:
    """`settings` without the keys added after caches were named, while they hold the value (`defaults`) that behaves
    as before they existed: a cache key hashed from the result names the same folder as before. A dict of defaults
    applies to the nested settings of that key (e.g. {"instruct": {"questions": "stored"}})."""
    kept = {}
    for key, value in settings.items():
        default = defaults.get(key, added_later)  # the function itself: a default no setting holds
        if isinstance(default, dict) and isinstance(value, dict):
            kept[key] = added_later(value, default)
        elif value != default:
            kept[key] = value
    return kept


def config_to_dict(config: Any) -> dict:
    """A config dataclass as plain JSON data (tuples become lists, nested dataclasses dicts)."""
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"expected a config dataclass, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type[C], data: dict) -> C:
    """Rebuild a config dataclass (nested dataclasses and tuples included) from `config_to_dict` output."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # a field added since the file was written keeps its default
        value, hint = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = config_from_dict(hint, value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_mismatch(saved: dict, expected: dict) -> list[str]:
    """Lines 'field: saved X, expected Y' for every (dotted) field where two config dicts differ."""
    saved, expected = _flatten(saved), _flatten(expected)
    missing = object()
    return [
        f"{key}: saved {saved.get(key, '(absent)')!r}, expected {expected.get(key, '(absent)')!r}"
        for key in sorted(saved.keys() | expected.keys())
        if saved.get(key, missing) != expected.get(key, missing)
    ]


def _atomic_write(path: Path, write: typing.Callable[[str], None]) -> None:
    """Write through `write(temp_path)`, then rename onto `path`: readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def building(path: Path) -> Iterator[Path]:
    """A fresh folder beside `path` to build a cached piece in; renamed to `path` when the block ends (atomically: a
    reader sees no folder or a whole one), deleted if it fails. Two builders never share a folder: when another
    process published `path` first, its piece is kept and this one is deleted (both hold the same thing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    try:
        yield folder
        os.replace(folder, path)
    except OSError:
        if not path.exists():
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_checkpoint(directory: str | Path, model: nn.Module, config: Any, run: dict | None = None) -> Path:
    """Save model.safetensors and config.json into `directory` (created if needed); returns the directory.

    run: how the run was made (`RUN_KEYS`, e.g. {"world_size": 2}), written beside the config's fields.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if run and set(run) - set(RUN_KEYS):
        raise ValueError(f"unknown run keys {sorted(set(run) - set(RUN_KEYS))}; expected some of {list(RUN_KEYS)}")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}  # any device
    text = json.dumps({**config_to_dict(config), **(run or {})}, indent=2, sort_keys=True)
    _atomic_write(directory / WEIGHTS, lambda tmp: save_file(state, tmp))
    _atomic_write(directory / CONFIG, lambda tmp: Path(tmp).write_text(text))
    return directory


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {path.parent}: "
                                f"expected a checkpoint folder written by save_checkpoint")
    return path


def load_config(directory: str | Path, cls: type[C]) -> C:
    """The config dataclass saved in `directory`/config.json."""
    return config_from_dict(cls, json.loads(_require(Path(directory) / CONFIG).read_text()))


def load_checkpoint(directory: str | Path, model: nn.Module, config: Any) -> nn.Module:
    """Load the weights in `directory` into `model` after checking its config.json equals `config`."""
    directory = Path(directory)
    saved = {k: v for k, v in json.loads(_require(directory / CONFIG).read_text()).items() if k not in RUN_KEYS}
    if dataclasses.is_dataclass(config):  # a field added since the file was written counts as its default
        saved = config_to_dict(config_from_dict(type(config), saved))
    problems = config_mismatch(saved, config_to_dict(config))
    if problems:
        raise ValueError(f"the checkpoint in {directory} was saved with another config:\n  " + "\n  ".join(problems))
    model.load_state_dict(load_file(_require(directory / WEIGHTS)))  # read on the CPU, copied to the model's device
    return model


TRAINER_STATE = "trainer_state.pt"


def save_trainer_state(directory: str | Path, state: dict) -> Path:
    """Save what resuming a training run needs (optimizer, scheduler, step, ...: tensors and plain data) atomically."""
    path = Path(directory) / TRAINER_STATE
    _atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def load_trainer_state(directory: str | Path) -> dict:
    """The state written by `save_trainer_state` (tensors and plain data only: loaded with weights_only=True)."""
    return torch.load(_require(Path(directory) / TRAINER_STATE), map_location="cpu", weights_only=True)
