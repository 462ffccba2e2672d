"""The course's cache: each piece built once, `train` registering its run, `warm` filling it, builders side by side."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import mobilevlm_mini.cache as cache_module
from mobilevlm_mini.__main__ import main
from mobilevlm_mini.cache import LESSON_SPLITS, register_trained, trained_vlm, vlm_path, warm
from mobilevlm_mini.checkpoint import WEIGHTS
from mobilevlm_mini.config import vlm_preset
from mobilevlm_mini.train import train

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


@pytest.fixture(scope="module")
def warmed(tmp_path_factory) -> tuple[Path, list, list]:
    """A quick-mode cache filled by `warm` once: (folder, what warm returned, what it reported)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOBILEVLM_MINI_DATA", str(folder))
        patch.setenv("MOBILEVLM_MINI_QUICK", "1")
        lines = []
        done = warm(report=lines.append)
    return folder, done, lines


@pytest.fixture
def cache_without_vlm(warmed, tmp_path, monkeypatch) -> Path:
    """A copy of the warmed cache (data and encoders) without its trained VLM."""
    folder = tmp_path / "cache"
    shutil.copytree(warmed[0], folder, ignore=shutil.ignore_patterns("vlm"))
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(folder))
    monkeypatch.setenv("MOBILEVLM_MINI_QUICK", "1")
    return folder


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_warm_builds_each_piece_then_nothing(warmed, monkeypatch):
    folder, first, lines = warmed
    assert [status for _, status, _ in first] == ["built"] * len(first)
    assert any(name.startswith("VLM") for name, _, _ in first) and any("text tuning" in name for name, _, _ in first)
    assert lines[-1].startswith(f"built {len(first)} of {len(first)} pieces")
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(folder))
    monkeypatch.setenv("MOBILEVLM_MINI_QUICK", "1")
    monkeypatch.setattr(cache_module, "train", lambda *a, **k: pytest.fail("warm trained a cached model again"))
    again = []
    assert all(status == "cached" for _, status, _ in warm(report=again.append))
    assert again[-1].startswith(f"nothing to build: all {len(first)} pieces were already cached")


def test_train_command_registers_its_run_where_lessons_look(cache_without_vlm, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "--preset", "quick", "--out", str(out)]) == 0
    cached = vlm_path(vlm_preset("quick"), "quick")
    assert (cached / WEIGHTS).read_bytes() == (out / WEIGHTS).read_bytes()
    monkeypatch.setattr(cache_module, "train", lambda *a, **k: pytest.fail("trained again instead of loading"))
    model = trained_vlm("quick", progress=False)
    assert (cached / WEIGHTS).is_file() and model.training is False
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]  # no half-written folder left


def test_a_straddle_run_trains_scores_and_caches_apart(cache_without_vlm, tmp_path):
    out = tmp_path / "straddle"
    assert main(["train", "--preset", "quick", "--layout", "straddle", "--out", str(out)]) == 0
    assert (out / "metrics.json").is_file()
    cached = vlm_path(vlm_preset("quick", layout="straddle"), "quick")
    assert (cached / WEIGHTS).read_bytes() == (out / WEIGHTS).read_bytes()
    assert not (vlm_path(vlm_preset("quick"), "quick") / WEIGHTS).exists()  # the aligned model is another one


def test_trained_vlm_trains_once_then_loads(cache_without_vlm, monkeypatch):
    first = trained_vlm("quick", progress=False)
    monkeypatch.setattr(cache_module, "train", lambda *a, **k: pytest.fail("trained again instead of loading"))
    assert same_weights(first, trained_vlm("quick", progress=False))


def test_register_refuses_an_unfinished_or_foreign_run(cache_without_vlm, tmp_path):
    config = vlm_preset("quick")
    train(config, out=tmp_path / "half", progress=False, stop_after=2)
    with pytest.raises(ValueError, match="stopped at step 2 of"):
        register_trained(tmp_path / "half", "quick")
    train(vlm_preset("quick", eval_every=2), out=tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="not trained with preset 'quick'"):
        register_trained(tmp_path / "other", "quick")
    assert not (vlm_path(config, "quick") / WEIGHTS).exists()


def test_two_builders_at_once_leave_one_good_model(cache_without_vlm):
    code = "from mobilevlm_mini.cache import trained_vlm; trained_vlm('quick', progress=False)"
    builders = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [builder.communicate()[1] for builder in builders]
    assert [builder.returncode for builder in builders] == [0, 0], errors
    folders = list((cache_without_vlm / "vlm").iterdir())
    assert [p.name for p in folders] == [vlm_path(vlm_preset("quick"), "quick").name]
    trained_vlm("quick", progress=False)  # loads


def test_warm_lists_every_split_a_lesson_draws():
    listed = {(split, full, small) for split, full, small in LESSON_SPLITS}
    pattern = re.compile(r'(?:load_split\(|prepare_split\([^,]+,)\s*"(\w+)",\s*(?:n=)?steps\((\d+),\s*(\d+)\)')
    drawn = set()
    for path in sorted(LESSONS.glob("[0-9]*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            drawn |= {(s, int(full), int(small)) for s, full, small in pattern.findall(cell.source)}
    assert drawn and drawn <= listed, f"splits lessons draw that `warm` does not build: {sorted(drawn - listed)}"


def test_two_encoder_builders_at_once_leave_one_good_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path))
    monkeypatch.setenv("MOBILEVLM_MINI_QUICK", "1")
    code = "from mobilevlm_mini.encoders import pretrained_model; pretrained_model(progress=False)"
    builders = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [builder.communicate()[1] for builder in builders]
    assert [builder.returncode for builder in builders] == [0, 0], errors
    for kind in ("data", "models"):
        assert not [p.name for p in (tmp_path / kind).iterdir() if p.name.startswith(".")]  # nothing half-built
    from mobilevlm_mini.encoders import pretrained_model

    pretrained_model(progress=False)  # loads what they left


def test_the_straddle_layout_has_its_own_encoder_and_model_and_the_aligned_names_stay():
    from dataclasses import asdict

    from mobilevlm_mini.checkpoint import config_to_dict, settings_digest
    from mobilevlm_mini.config import vlm_preset
    from mobilevlm_mini.contrastive import default_recipe
    from mobilevlm_mini.data import DATA_VERSION
    from mobilevlm_mini.encoders import recipe_path

    aligned, straddle = vlm_preset("quick"), vlm_preset("quick", layout="straddle")
    assert vlm_path(aligned, "quick") != vlm_path(straddle, "quick")
    recipe = default_recipe(quick=True)
    assert recipe_path(recipe) != recipe_path(default_recipe(quick=True, layout="straddle"))
    # as hashed before layouts (and augmentation, and the ViT's stem) existed
    before = {k: v for k, v in config_to_dict(recipe).items() if k not in ("layout", "augment")}
    before["model"]["vit"].pop("stem")
    assert recipe_path(recipe).name.endswith(settings_digest({"recipe": before, "data_version": DATA_VERSION}))
    assert "layout" in asdict(straddle) and straddle.layout == "straddle"


def test_augment_stem_and_fresh_questions_have_their_own_names_and_the_defaults_keep_theirs():
    """TrainConfig.augment and ViTConfig.stem (each its own encoder and model) and StageConfig.questions were added
    after models were cached: at their defaults the cache names are those hashed before they existed."""
    from dataclasses import replace

    from mobilevlm_mini.checkpoint import added_later, config_to_dict, settings_digest
    from mobilevlm_mini.config import vlm_preset
    from mobilevlm_mini.contrastive import default_recipe
    from mobilevlm_mini.encoders import recipe_path

    config = vlm_preset("quick")
    before = config_to_dict(config)
    for key in ("layout", "augment"):
        before.pop(key)
    for stage in ("align", "instruct"):
        before[stage].pop("questions")
    before["model"]["vit"].pop("stem")
    encoder = recipe_path(default_recipe(quick=True))
    assert vlm_path(config, "quick").name.endswith(settings_digest({"config": before, "encoder": encoder.name}))
    augmented = vlm_preset("quick", augment=True)
    assert recipe_path(default_recipe(quick=True, augment=True)) != encoder
    assert recipe_path(default_recipe(quick=True, stem=16)) != encoder
    fresh = replace(config, instruct=replace(config.instruct, questions="fresh"))
    stem = replace(config, model=replace(config.model, vit=replace(config.model.vit, stem=16)))
    assert len({vlm_path(c, "quick") for c in (config, augmented, fresh, stem)}) == 4
    assert added_later({"a": 1, "s": {"q": "x", "r": 2}}, {"a": 1, "s": {"q": "x"}}) == {"s": {"r": 2}}
