"""Hugging Face formats: export -> transformers -> same logits and tokens; import back bit-identical; real names and
sizes."""

import json
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # everything here is local: never reach the hub
transformers = pytest.importorskip("transformers")

from mobilevlm_mini.generate import generate  # noqa: E402
from mobilevlm_mini.hf import (  # noqa: E402
    MM_PROJECTOR_PREFIX,
    MOBILELLAMA_HF_CONFIGS,
    config_from_hf,
    export_llama,
    import_llama,
    llama_names,
    load_mobilevlm_projector,
    mobilevlm_projector_names,
    skeleton,
    weight_bytes,
)
from mobilevlm_mini.language import MobileLlama, count_parameters, preset  # noqa: E402
from mobilevlm_mini.projectors import build_projector  # noqa: E402

SMALL = dict(vocab_size=50, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128)


def small_model(seed: int = 0, **overrides) -> MobileLlama:
    """A small grouped-query MobileLlama whose RMSNorm weights are not all ones, so a lost norm would show."""
    torch.manual_seed(seed)
    model = MobileLlama(preset("tiny", **{**SMALL, **overrides})).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(0.2 * torch.randn_like(parameter))
    return model


def load_hf(directory):
    return transformers.LlamaForCausalLM.from_pretrained(directory, local_files_only=True).eval()


def same_tensors(a: MobileLlama, b: MobileLlama) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)


def test_export_loads_in_transformers_with_matching_logits(tmp_path):
    model = small_model()
    export_llama(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    hf = load_hf(tmp_path)
    ids = torch.randint(0, SMALL["vocab_size"], (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_names_map_one_to_one():
    model = small_model()
    names = llama_names(model.config)
    assert set(names) == set(model.state_dict())  # every tensor has a row, no row is left over
    assert all(ours == theirs for ours, theirs in names.items())


def test_round_trip_is_bit_identical(tmp_path):
    model = small_model(seed=3)
    back = import_llama(export_llama(model, tmp_path / "ours"))
    assert back.config == model.config
    assert same_tensors(model, back)
    # through transformers too: its save_pretrained writes transformers' own config layout
    load_hf(tmp_path / "ours").save_pretrained(tmp_path / "theirs")
    assert same_tensors(model, import_llama(tmp_path / "theirs"))


def test_greedy_generations_identical(tmp_path):
    model = small_model(seed=1)
    hf = load_hf(export_llama(model, tmp_path))
    ids = torch.randint(3, SMALL["vocab_size"], (4, 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :4], mask[2, :9] = 0, 0  # left padding
    ids = ids.masked_fill(mask == 0, 0)
    ours = generate(model, ids, mask, max_new_tokens=20, eos_token_id=2, pad_token_id=0)
    theirs = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=20, do_sample=False, eos_token_id=2,
                         pad_token_id=0)
    assert torch.equal(ours, theirs[:, ids.shape[1]:])


def test_tied_embeddings(tmp_path):
    model = small_model(tie_word_embeddings=True)
    export_llama(model, tmp_path)
    from safetensors.torch import load_file

    assert "lm_head.weight" not in load_file(tmp_path / "model.safetensors")  # stored once, as transformers does
    ids = torch.randint(0, SMALL["vocab_size"], (2, 10))
    with torch.no_grad():
        assert (model(ids) - load_hf(tmp_path)(ids).logits).abs().max().item() <= 1e-4
    back = import_llama(tmp_path)
    assert back.lm_head.weight is back.model.embed_tokens.weight and same_tensors(model, back)


def test_export_in_half_precision(tmp_path):
    model = small_model()
    export_llama(model, tmp_path, dtype=torch.float16)
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "float16"
    back = import_llama(tmp_path)
    for a, b in zip(model.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a.half().float(), b)


def test_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        import_llama(tmp_path)
    export_llama(small_model(), tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["model.norm.weight"]
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="model.norm.weight"):
        import_llama(tmp_path)


REAL = [("mtgv/MobileLLaMA-1.4B-Base", "mobilellama-1.4b"), ("mtgv/MobileLLaMA-2.7B-Base", "mobilellama-2.7b")]


@pytest.mark.parametrize("hub_name, name", REAL)
def test_real_configs_map_onto_presets(hub_name, name):
    assert config_from_hf(MOBILELLAMA_HF_CONFIGS[hub_name]) == preset(name)


def test_config_from_hf_layouts():
    v5 = {**MOBILELLAMA_HF_CONFIGS[REAL[0][0]], "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}}
    assert config_from_hf(v5).rope_theta == 5e5  # transformers 5 keeps it in rope_parameters
    assert config_from_hf({**v5, "rope_theta": 1e4, "rope_parameters": None}).rope_theta == 1e4  # transformers 4
    assert config_from_hf({**v5, "num_key_value_heads": None}).num_key_value_heads == 16  # absent: multi-head


@pytest.mark.parametrize("change, message", [
    ({"model_type": "qwen2"}, "not a Llama"),
    ({"attention_bias": True}, "attention_bias"),
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "linear"),
    ({"head_dim": 64}, "head_dim"),
])
def test_config_from_hf_rejects_what_we_cannot_build(change, message):
    with pytest.raises(ValueError, match=message):
        config_from_hf({**MOBILELLAMA_HF_CONFIGS["mtgv/MobileLLaMA-1.4B-Base"], **change})
    with pytest.raises(ValueError, match="hidden_size"):
        config_from_hf({"model_type": "llama", "vocab_size": 10})


@pytest.mark.parametrize("hub_name, name", REAL)
def test_skeleton_counts_without_memory(hub_name, name):
    config = config_from_hf(MOBILELLAMA_HF_CONFIGS[hub_name])
    model = skeleton(config)
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == count_parameters(config)
    with torch.device("meta"):
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig.from_dict(MOBILELLAMA_HF_CONFIGS[hub_name]))
    assert hf.num_parameters() == count_parameters(config)


def test_weight_bytes():
    assert [weight_bytes(1000, p) for p in ("fp32", "fp16", "int8", "int4")] == [4000, 2000, 1000, 500]
    with pytest.raises(ValueError, match="int3"):
        weight_bytes(10, "int3")


# The official state-dict keys (under model.mm_projector.), read off mobilevlm/model/vision_projector.py and
# torchvision's InvertedResidual: mlp = [Identity, Linear, GELU, Linear], mb_block = [Identity, IR(s=1), IR(s=2)].
_IR_KEYS = ["block.0.0.weight", "block.0.1.weight", "block.0.1.bias", "block.1.fc1.weight", "block.1.fc1.bias",
            "block.1.fc2.weight", "block.1.fc2.bias", "block.2.0.weight", "block.2.1.weight", "block.2.1.bias"]
OFFICIAL_KEYS = {
    "ldp": ["model.mlp.1.weight", "model.mlp.1.bias", "model.mlp.3.weight", "model.mlp.3.bias"]
    + [f"model.mb_block.{b}.{key}" for b in (1, 2) for key in _IR_KEYS],
    "ldpv2": ["mlp.mlp.0.weight", "mlp.mlp.0.bias", "mlp.mlp.2.weight", "mlp.mlp.2.bias", "peg.peg.0.weight",
              "peg.peg.0.bias"],
}


@pytest.mark.parametrize("name", ["ldp", "ldpv2"])
def test_projector_names_cover_every_parameter(name):
    torch.manual_seed(0)
    projector = build_projector(name, 24, 32).eval()
    names = mobilevlm_projector_names(projector)
    assert set(names) == set(projector.state_dict())  # every parameter of ours ...
    # ... onto every official one
    assert sorted(names.values()) == sorted(MM_PROJECTOR_PREFIX + key for key in OFFICIAL_KEYS[name])
    official = {theirs: projector.state_dict()[ours] for ours, theirs in names.items()}
    official["model.layers.0.mlp.up_proj.weight"] = torch.zeros(1)  # a whole checkpoint: other keys are ignored
    torch.manual_seed(1)
    fresh = load_mobilevlm_projector(build_projector(name, 24, 32).eval(), official)
    x = torch.randn(2, 64, 24)
    torch.testing.assert_close(fresh(x), projector(x), rtol=0, atol=0)


def test_projector_names_errors():
    with pytest.raises(ValueError, match="'mlp'"):
        mobilevlm_projector_names(build_projector("mlp", 8, 8))
    projector = build_projector("ldpv2", 8, 8)
    official = {theirs: projector.state_dict()[ours] for ours, theirs in mobilevlm_projector_names(projector).items()}
    del official[MM_PROJECTOR_PREFIX + "peg.peg.0.bias"]
    with pytest.raises(ValueError, match="peg.peg.0.bias"):
        load_mobilevlm_projector(projector, official)
