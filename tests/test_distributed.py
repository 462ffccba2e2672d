"""Devices and data parallelism: nothing hard-wired to the CPU, and torchrun + DDP equal to one process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mobilevlm_mini.train as train_module
from mobilevlm_mini import distributed
from mobilevlm_mini.__main__ import main
from mobilevlm_mini.checkpoint import CONFIG, WEIGHTS
from mobilevlm_mini.data import generate_dataset
from mobilevlm_mini.devices import available_devices, resolve_device
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.train import build_model, conversation_batch, split_from_dataset, train

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from test_train import fake_pretrained_vit, tiny_config  # noqa: E402  (a sibling test module)

# What each torchrun process runs: the same tiny run as `tiny_run` below, with the same seeded random ViT.
WORKER = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import mobilevlm_mini.train as t; import test_train; "
          "t.pretrained_vit = test_train.fake_pretrained_vit; import test_distributed; "
          "test_distributed.tiny_run(sys.argv[1])")


def tiny_run(out: str | Path) -> None:
    """test_train's tiny config (batches of 4, 6 steps) on its 12 training pictures, saved to `out`."""
    config = tiny_config()
    model = build_model(config)
    data = {"train": split_from_dataset(model, generate_dataset(12, seed=5)),
            "validation": split_from_dataset(model, generate_dataset(4, seed=6))}
    train(config, out=out, progress=False, data=data)


def test_two_processes_with_ddp_end_with_the_weights_of_one(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "pretrained_vit", fake_pretrained_vit)
    tiny_run(tmp_path / "one")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(tmp_path / "worker.py"), str(tmp_path / "two")]
    (tmp_path / "worker.py").write_text(WORKER)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = load_file(tmp_path / "one" / WEIGHTS), load_file(tmp_path / "two" / WEIGHTS)
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    assert any(not torch.equal(one[name], build_model(tiny_config()).state_dict()[name]) for name in one)  # it trained
    saved = json.loads((tmp_path / "two" / CONFIG).read_text())
    assert (saved["world_size"], saved["device"]) == (2, "cpu")
    assert json.loads((tmp_path / "one" / CONFIG).read_text())["world_size"] == 1


def test_alone_a_process_is_rank_0_of_1_and_keeps_the_whole_batch():
    assert distributed.world() == (0, 1) and distributed.is_main()
    batch = (torch.arange(6), torch.ones(6, 2))
    assert distributed.shard(batch) is batch
    assert torch.equal(distributed.global_sum(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
    with distributed.main_first():
        pass


def test_devices_resolve_and_refuse_what_is_missing(monkeypatch):
    assert resolve_device() == torch.device("cpu") and available_devices()[0] == "cpu"
    assert resolve_device("auto").type in available_devices()
    monkeypatch.setenv("MOBILEVLM_MINI_DEVICE", "cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    for missing in {"cuda", "mps"} - set(available_devices()):
        with pytest.raises(ValueError, match=rf"device '{missing}' is not available on this machine; available: cpu"):
            resolve_device(missing)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_on_a_missing_device_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--preset", "quick", "--out", str(tmp_path), "--device", "cuda"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda' is not available") and err.count("\n") == 1


def test_nothing_in_a_training_step_is_hard_wired_to_the_cpu(monkeypatch):
    """Batches follow their features' device, and on PyTorch's meta device (shapes, no data) the encoder, the
    projector and the language model (mask, positions, RoPE, grouped-query attention, the answer-only last layer) run
    without meeting a CPU tensor. (Writing the visual tokens over the placeholders reads values: not on meta.)"""
    monkeypatch.setattr(train_module, "pretrained_vit", fake_pretrained_vit)
    config = tiny_config()
    model = build_model(config)
    split = split_from_dataset(model, generate_dataset(4, seed=5))
    ids, features, mask, labels = conversation_batch(model, split.to(torch.device("meta")), torch.arange(4))
    assert {t.device.type for t in (ids, features, mask, labels)} == {"meta"}
    meta = MobileVLM(config.model).to("meta")
    visual = meta.project(meta.encode_images(torch.rand(4, 3, 48, 48, device="meta")))  # (B, K, hidden)
    embeds = torch.cat([visual, meta.llm.model.embed_tokens(ids)], dim=1)  # (B, K + N, hidden); embed() checks ids
    mask = torch.cat([torch.ones(visual.shape[:2], dtype=mask.dtype, device="meta"), mask], dim=1)
    keep = torch.zeros(4, 3, dtype=torch.long, device="meta")
    for kept in (None, keep):
        logits = meta.llm(inputs_embeds=embeds, attention_mask=mask, keep=kept)
        assert logits.device.type == "meta" and logits.shape[-1] == config.model.llm.vocab_size
        logits.float().mean().backward(retain_graph=True)  # both passes share the embeddings
