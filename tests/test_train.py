"""Training the tiny MobileVLM: batches, schedule, stages, checkpoints, resume, and the train/eval/ask commands."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mobilevlm_mini.train as train_module
from mobilevlm_mini.__main__ import main
from mobilevlm_mini.checkpoint import TRAINER_STATE, WEIGHTS
from mobilevlm_mini.config import StageConfig, TrainConfig, VLMConfig, vlm_preset
from mobilevlm_mini.data import generate_dataset, shapes_tokenizer
from mobilevlm_mini.language import preset
from mobilevlm_mini.train import (
    LR_FLOOR,
    batch_rows,
    build_model,
    conversation_batch,
    exact_match,
    load_trained,
    predict,
    prepare_split,
    set_trainable,
    split_from_dataset,
    stage_optim,
    stage_options,
    stage_plan,
    train,
    turn_order,
    validation_loss,
)
from mobilevlm_mini.vision import ViT, ViTConfig

VIT = ViTConfig(image_size=48, patch_size=12, dim=32, depth=2, heads=2)


def tiny_config(**overrides) -> TrainConfig:
    """A few-second run: a small random ViT (4 x 4 patches), a 2-layer LLM, a handful of steps."""
    llm = preset("tiny", vocab_size=shapes_tokenizer().vocab_size, hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2)
    config = TrainConfig(
        model=VLMConfig(vit=VIT, llm=llm), align=StageConfig(steps=2, batch_size=4, lr=3e-3, warmup=1),
        instruct=StageConfig(steps=4, batch_size=4, lr=3e-3, warmup=2), n_train=12, n_val=4, n_test=4, eval_every=2,
    )
    return dataclasses.replace(config, **overrides)


def fake_pretrained_vit(*args, **kwargs) -> ViT:
    """No pretrained encoder needed: the frozen ViT is a seeded random one of the test config's size."""
    torch.manual_seed(123)
    return ViT(VIT).eval().requires_grad_(False)


@pytest.fixture(autouse=True)
def random_vit(monkeypatch):
    monkeypatch.setattr(train_module, "pretrained_vit", fake_pretrained_vit)


@pytest.fixture(scope="module")
def datasets():
    return {"train": generate_dataset(12, seed=5), "validation": generate_dataset(4, seed=6)}


def prepared(config: TrainConfig, datasets) -> dict:
    model = build_model(config)
    return {name: split_from_dataset(model, ds) for name, ds in datasets.items()}


def test_batch_rows_visit_every_row_once_per_epoch_and_repeat():
    seen = torch.cat([batch_rows(10, 4, step, seed=0) for step in range(5)])  # 20 rows = 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert torch.equal(batch_rows(10, 4, 3, seed=0), batch_rows(10, 4, 3, seed=0))
    assert not torch.equal(torch.cat([batch_rows(10, 4, s, seed=1) for s in range(3)]), seen[:12])


def test_stage_optimizer_decays_to_a_tenth_with_betas_0_98():
    optim = stage_optim(StageConfig(steps=100, warmup=10, lr=2e-3), weight_decay=0.01, grad_clip=0.5, fused=True)
    assert optim.floor == LR_FLOOR == 0.1 and optim.betas == (0.9, 0.98) and optim.lr == 2e-3
    assert (optim.steps, optim.warmup, optim.weight_decay, optim.grad_clip, optim.fused) == (100, 10, 0.01, 0.5, True)


def test_stage_plan_skips_empty_stages_and_refuses_none():
    plan = stage_plan(tiny_config(align=StageConfig(steps=0)))
    assert [(name, first) for name, _, first in plan] == [("instruct", 0)]
    assert [first for *_, first in stage_plan(tiny_config())] == [0, 2]
    with pytest.raises(ValueError, match="every stage has 0 steps"):
        stage_plan(tiny_config(align=StageConfig(steps=0), instruct=StageConfig(steps=0)))


@pytest.mark.parametrize("align_llm", [False, True])
@pytest.mark.parametrize("instruct_projector", [False, True])
def test_each_stage_trains_its_parts_and_never_the_vit(align_llm, instruct_projector):
    config = tiny_config(align_llm=align_llm, instruct_projector=instruct_projector)
    model = build_model(config)
    projector, llm = [*model.projector.parameters(), model.visual_positions], list(model.llm.parameters())
    expected = {"align": projector + llm if align_llm else projector,
                "instruct": projector + llm if instruct_projector else llm}
    for stage in ("align", "instruct"):
        assert {id(p) for p in set_trainable(model, stage, config)} == {id(p) for p in expected[stage]}
    assert not any(p.requires_grad for p in model.vit.parameters())
    with pytest.raises(ValueError, match="unknown stage 'pretrain'"):
        set_trainable(model, "pretrain", config)


def test_split_from_dataset_keeps_given_features_and_every_turn(datasets):
    """Given features (e.g. the oracle tokens of tools/oracle_tokens.py) replace the ViT's; the texts are the same."""
    ds = datasets["train"]
    model = build_model(tiny_config())
    features = torch.randn(len(ds), 9, 32)
    given, encoded = split_from_dataset(None, ds, features), split_from_dataset(model, ds)
    assert given.features is features and encoded.features.shape == (len(ds), 16, 32)
    assert given.conversations == encoded.conversations and given.captions == encoded.captions == ds["caption"]
    assert [len(c) for c in given.conversations] == [len(q) for q in ds["questions"]]


def test_conversation_batch_shuffles_turns_but_keeps_every_answer(datasets):
    config = tiny_config()
    data = prepared(config, datasets)
    model = build_model(config)
    rows = torch.tensor([0, 1])
    ids, feats, mask, labels = conversation_batch(model, data["train"], rows, torch.Generator().manual_seed(0))
    assert feats.shape == (2, 16, 32) and ids.shape == mask.shape == labels.shape
    for row in range(2):
        answers = [a for _, _, a in data["train"].conversations[row]]
        kept = model.tokenizer.decode([t for t in labels[row].tolist() if t >= 0], skip_special=True)
        assert sorted(kept.split()) == sorted(" ".join(answers).split())


def test_conversation_batch_max_turns_keeps_one_random_question_per_image(datasets):
    config = tiny_config()
    data = prepared(config, datasets)
    model = build_model(config)
    rows = torch.tensor([0, 1, 2])
    ids, _, _, labels = conversation_batch(model, data["train"], rows, torch.Generator().manual_seed(0), max_turns=1)
    for row in range(3):
        assert (ids[row] == model.tokenizer.ids["<user>"]).sum() == 1  # one question
        kept = model.tokenizer.decode([t for t in labels[row].tolist() if t >= 0], skip_special=True)
        assert kept in [a for _, _, a in data["train"].conversations[row]]  # its answer, and nothing else


def test_turn_order_draws_weighted_types_first_more_often():
    """type_weights: a type weighing 3 comes first about 3 times as often as one weighing 1; no generator keeps the
    natural order; an unknown type is named."""
    types = ["colour", "count", "shape", "neighbour"]
    assert turn_order(types) == [0, 1, 2, 3]
    generator = torch.Generator().manual_seed(0)
    firsts = [turn_order(types, generator, {"count": 3.0})[0] for _ in range(4000)]
    share = firsts.count(1) / len(firsts)
    assert share == pytest.approx(3 / 6, abs=0.03)  # weights 1, 3, 1, 1
    assert sorted(turn_order(types, generator, {"count": 3.0})) == [0, 1, 2, 3]  # every turn, once
    with pytest.raises(ValueError, match="unknown question types \\['colours'\\]"):
        turn_order(types, generator, {"colours": 2.0})


def test_validation_loss_reads_sequences_shaped_like_the_stages_training(datasets):
    """Stage 2 with max_turns=1 is validated on one question per image (its first), as it trains and is asked."""
    config = tiny_config()
    data = prepared(config, datasets)
    model = build_model(config)
    stage = dataclasses.replace(config.instruct, max_turns=1)
    options = stage_options("instruct", stage)
    assert options == {"max_turns": 1, "type_weights": None, "questions": "stored"}
    assert stage_options("align", stage) == {}
    ids, features, mask, labels = conversation_batch(model, data["validation"], torch.arange(len(data["validation"])),
                                                     **options)
    first = [model.tokenizer.decode([t for t in row.tolist() if t >= 0], skip_special=True) for row in labels]
    assert first == [turns[0][2] for turns in data["validation"].conversations]
    assert len(data["validation"]) <= 64  # one batch inside validation_loss: the same mean
    out = model(ids, features, mask, labels)
    assert validation_loss(model, data["validation"], "instruct", **options) == pytest.approx(out.loss.item(), rel=1e-5)


def test_image_size_layout_and_augment_reach_the_encoder_and_the_pictures(monkeypatch):
    """A 72-pixel recipe asks for a 72-pixel encoder and draws 72-pixel pictures; the course's default is 48 px.
    A straddle-layout recipe asks for an encoder pretrained on that layout and draws its pictures that way.
    An augmented recipe asks for an encoder pretrained on augmented pictures and trains on them; it validates and
    tests on plain ones."""
    asked = {}

    def fake_vit(quick=None, progress=True, image_size=48, layout="aligned", augment=False, stem=0):
        asked["encoder"], asked["encoder layout"], asked["encoder augment"] = image_size, layout, augment
        return ViT(dataclasses.replace(VIT, image_size=image_size)).eval().requires_grad_(False)

    def fake_split(split, n, world, progress=True):
        asked.setdefault("worlds", {})[split] = (world.image_size, world.layout, world.augment is not None)
        return generate_dataset(n, seed=5, config=world, progress=False)

    monkeypatch.setattr(train_module, "pretrained_vit", fake_vit)
    monkeypatch.setattr(train_module, "load_split", fake_split)
    config = tiny_config()
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, vit=dataclasses.replace(VIT, image_size=72), projector="mlp"),
        layout="straddle")
    model = build_model(config)
    test = prepare_split(model, "test", 3, layout=config.layout)
    assert asked == {"encoder": 72, "encoder layout": "straddle", "encoder augment": False,
                     "worlds": {"test": (72, "straddle", False)}}
    assert test.features.shape == (3, 36, 32)  # 72 / 12 = 6x6 patches
    asked.clear()
    augmented = dataclasses.replace(tiny_config(), augment=True, n_train=4, n_val=2)
    train_module.prepare_data(build_model(augmented), augmented)
    assert asked["encoder augment"] and asked["worlds"]["validation"][2] is False
    assert asked["worlds"]["train"][2] is True
    with pytest.raises(ValueError, match="augment draws training pictures only"):
        prepare_split(model, "test", 3, augment=True)
    with pytest.raises(ValueError, match="use it with layout 'aligned'"):
        dataclasses.replace(tiny_config(), augment=True, layout="straddle")
    tiny = vlm_preset("tiny")
    assert tiny.model.vit.image_size == 48 and tiny.model.question_first and tiny.instruct.max_turns == 1


def test_exact_match_counts_per_type():
    records = [
        {"type": "colour", "answer": "red", "predicted": "red"},
        {"type": "colour", "answer": "red", "predicted": "blue"},
        {"type": "neighbour", "answer": "blue square", "predicted": "blue square"},
    ]
    result = exact_match(records)
    assert result["exact_match"] == pytest.approx(2 / 3) and result["n"] == 3
    assert result["per_type"] == {"colour": {"exact_match": 0.5, "n": 2}, "neighbour": {"exact_match": 1.0, "n": 1}}


def test_training_lowers_the_loss_and_is_repeatable(datasets):
    config = tiny_config(instruct=StageConfig(steps=12, batch_size=6, lr=3e-3, warmup=2), eval_every=6)
    data = prepared(config, datasets)
    model, history = train(config, progress=False, data=data)
    assert history["stage"] == ["align"] * 2 + ["instruct"] * 12
    assert np.mean(history["loss"][-3:]) < np.mean(history["loss"][2:5])
    assert history["val_step"] == [2, 6, 12, 14] and history["val_exact_match"][0] is None
    _, again = train(config, progress=False, data=data)
    assert again["loss"] == history["loss"]
    records = predict(model, data["validation"])
    assert len(records) == sum(len(c) for c in data["validation"].conversations)


@pytest.mark.parametrize("interrupt_at", [2, 3])  # at the stage boundary, and inside stage 2
def test_resumed_run_ends_with_the_same_weights(tmp_path, datasets, interrupt_at):
    config = tiny_config()
    data = prepared(config, datasets)
    straight, history = train(config, out=tmp_path / "straight", progress=False, data=data)
    train(config, out=tmp_path / "resumed", progress=False, data=data, stop_after=interrupt_at)
    assert torch.load(tmp_path / "resumed" / TRAINER_STATE)["step"] == interrupt_at
    resumed, resumed_history = train(config, out=tmp_path / "resumed", resume=True, progress=False, data=data)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert resumed_history["loss"] == history["loss"]
    assert (tmp_path / "resumed" / WEIGHTS).read_bytes() == (tmp_path / "straight" / WEIGHTS).read_bytes()


def test_resume_with_another_config_names_the_fields(tmp_path, datasets):
    config = tiny_config()
    data = prepared(config, datasets)
    train(config, out=tmp_path, progress=False, data=data, stop_after=2)
    other = tiny_config(seed=3, instruct=StageConfig(steps=4, batch_size=4, lr=1e-3, warmup=2))
    with pytest.raises(ValueError, match="another config") as error:
        train(other, out=tmp_path, resume=True, progress=False, data=data)
    assert ("instruct.lr: saved 0.003, expected 0.001" in str(error.value)
            and "seed: saved 0, expected 3" in str(error.value))


def test_resume_needs_every_file(tmp_path, datasets):
    config = tiny_config()
    with pytest.raises(FileNotFoundError, match="missing model.safetensors, config.json, trainer_state.pt"):
        train(config, out=tmp_path, resume=True, progress=False)
    data = prepared(config, datasets)
    train(config, out=tmp_path, progress=False, data=data, stop_after=2)
    (tmp_path / TRAINER_STATE).unlink()
    with pytest.raises(FileNotFoundError, match="missing trainer_state.pt"):
        train(config, out=tmp_path, resume=True, progress=False, data=data)


def test_load_trained_rebuilds_the_model(tmp_path, datasets):
    config = tiny_config()
    data = prepared(config, datasets)
    model, _ = train(config, out=tmp_path, progress=False, data=data)
    loaded, loaded_config = load_trained(tmp_path)
    assert loaded_config == config
    questions = ["what colour is the circle ?", "how many shapes are there ?"]
    feats = data["validation"].features[:2]
    assert loaded.answer(feats, questions) == model.answer(feats, questions)
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_trained(tmp_path / "nothing")


def test_presets():
    assert vlm_preset() == vlm_preset("tiny")
    quick = vlm_preset("quick", projector="mlp", seed=2)
    assert quick.model.projector == "mlp" and quick.seed == 2 and quick.n_train < vlm_preset().n_train
    assert vlm_preset("quick").model.projector == "ldp"  # presets are not changed by overrides
    with pytest.raises(ValueError, match="unknown preset"):
        vlm_preset("huge")
    with pytest.raises(ValueError, match=r"unknown fields \['stepz'\]"):
        vlm_preset("tiny", stepz=3)


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, datasets):
    """A trained (briefly) checkpoint folder, made with the random ViT."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "pretrained_vit", fake_pretrained_vit)
        config = tiny_config()
        folder = tmp_path_factory.mktemp("ckpt")
        train(config, out=folder, progress=False, data=prepared(config, datasets))
    return folder


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "picture.png"
    Image.fromarray(np.full((40, 60, 4), 200, dtype=np.uint8), mode="RGBA").save(path)
    return path


def test_ask_answers_and_says_how_it_read_the_image(checkpoint, picture, capsys):
    assert main(["ask", "--ckpt", str(checkpoint), "--image", str(picture),
                 "--question", "what colour is the circle ?"]) == 0
    out = capsys.readouterr().out
    assert "60x40 RGBA" in out and "converted to RGB" in out and "48x48" in out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--image": "missing.png"}, "no image file"),
        ({"--image": "not_an_image.txt"}, "is not an image"),
        ({"--question": "is the dog happy ?"}, "unknown words ['dog', 'happy']"),
        ({"--question": "  "}, "the question is empty"),
        ({"--ckpt": "empty_dir"}, "no config.json"),
    ],
)
def test_ask_bad_input_is_one_clear_line(checkpoint, picture, tmp_path, capsys, change, message):
    (tmp_path / "not_an_image.txt").write_text("hello")
    (tmp_path / "empty_dir").mkdir()
    args = {"--ckpt": str(checkpoint), "--image": str(picture), "--question": "what colour is the circle ?"}
    args.update({key: str(tmp_path / value) if key != "--question" else value for key, value in change.items()})
    assert main(["ask", *[x for pair in args.items() for x in pair]]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_eval_writes_json_per_question_type(checkpoint, tmp_path, capsys, monkeypatch, datasets):
    monkeypatch.setattr(train_module, "load_images",
                        lambda split, n, quick=False, image_size=48, layout="aligned", augment=False:
                        datasets["validation"].select(range(n)))
    out = tmp_path / "results.json"
    assert main(["eval", "--ckpt", str(checkpoint), "--split", "test", "--n", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["split"] == "test" and result["images"] == 3
            and result["n"] == sum(v["n"] for v in result["per_type"].values()))
    assert "exact match" in capsys.readouterr().out


def test_eval_and_train_refuse_bad_folders(tmp_path, capsys):
    assert main(["eval", "--ckpt", str(tmp_path / "nope")]) != 0
    assert "no checkpoint folder" in capsys.readouterr().err
    assert main(["train", "--preset", "quick", "--out", str(tmp_path / "fresh"), "--resume"]) != 0
    assert "cannot resume" in capsys.readouterr().err


def test_train_resume_with_another_preset_names_the_fields(checkpoint, capsys):
    assert main(["train", "--preset", "quick", "--out", str(checkpoint), "--resume"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "another config" in err and "n_train" in err and err.count("\n") == 1


def test_commands_have_help_and_no_traceback_as_a_program(tmp_path):
    for command in ("train", "eval", "ask"):
        result = subprocess.run([sys.executable, "-m", "mobilevlm_mini", command, "--help"], capture_output=True,
                                text=True)
        assert result.returncode == 0 and ("--ckpt" in result.stdout or "--out" in result.stdout)
    result = subprocess.run([sys.executable, "-m", "mobilevlm_mini", "ask", "--ckpt", str(tmp_path), "--image", "x.png",
                             "--question", "hi"], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def test_fresh_questions_ask_new_turns_about_the_same_scene(datasets):
    """questions="fresh": each step's questions come from the image's objects (data.conversation), so they change
    from one step to the next but stay answerable from the scene; the same generator seed gives the same batch."""
    config = tiny_config()
    data = prepared(config, datasets)
    model = build_model(config)
    rows = torch.arange(8)

    def answers(seed: int, questions: str) -> list[str]:
        _, _, _, labels = conversation_batch(model, data["train"], rows, torch.Generator().manual_seed(seed),
                                             questions=questions)
        return [model.tokenizer.decode([t for t in row.tolist() if t >= 0], skip_special=True) for row in labels]

    assert answers(0, "fresh") == answers(0, "fresh") and answers(0, "fresh") != answers(1, "fresh")
    scene = data["train"].scenes[0]
    names = {o.colour for o in scene} | {o.shape for o in scene}
    assert names & set(" ".join(answers(2, "balanced")).split())
    with pytest.raises(ValueError, match="unknown questions 'new'"):
        StageConfig(steps=1, questions="new")


def test_balanced_counts_ask_zero_and_two_more_often():
    """Count questions about a shape or a colour: "one" is most answers in the stored conversations; balanced
    counts ask more zeros and twos (the answers the model gets wrong most)."""
    from mobilevlm_mini.data import WorldConfig, conversation, sample_scene

    def answers(balanced: bool) -> list[str]:
        rng = np.random.default_rng(0)
        found = []
        for _ in range(3000):
            turns = conversation(sample_scene(rng, WorldConfig()), rng, balanced_counts=balanced)
            found += [a for kind, q, a in turns if kind == "count" and q != "how many shapes are there?"]
        return found

    plain, balanced = answers(False), answers(True)
    assert balanced.count("one") / len(balanced) < plain.count("one") / len(plain) - 0.15
    for rare in ("zero", "two"):
        assert balanced.count(rare) / len(balanced) > plain.count(rare) / len(plain)
