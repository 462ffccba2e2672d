"""The real-width decode bench: every figure present and consistent (never timing values), on a small width."""

import json

import pytest

from mobilevlm_mini.__main__ import main
from mobilevlm_mini.bench import PRECISIONS
from mobilevlm_mini.language import preset
from mobilevlm_mini.realwidth import VECTOR_FLAGS, RealWidthConfig, build_stack, layer_bytes, prefill_flops

SPREAD = {"median", "min", "max", "q1", "q3", "n"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("realwidth") / "real_width.json"
    args = ["bench", "--real-width", "--width", "tiny", "--layers", "2", "--threads", "1", "--repeats", "2",
            "--warmup", "0", "--new-tokens", "3", "--json", str(out)]
    assert main(args) == 0
    return json.loads(out.read_text())


def test_real_width_json_has_every_figure(report):
    assert list(report["precisions"]) == ["fp32", "int8-fused", "int8-dynamic", "int4-fused", "int8", "int4"]
    assert set(report["precisions"]) == set(PRECISIONS)
    assert report["bandwidth_gb_s"] > 0 and report["bandwidth_1_thread_gb_s"] > 0
    assert report["machine"]["doctor_gflops"] > 0
    assert set(report["machine"]["vector_extensions"]) <= set(VECTOR_FLAGS) and report["machine"]["cpu_capability"]
    assert report["settings"]["layers"] == 2 and report["settings"]["llm"]["hidden_size"] == 128
    for name, row in report["precisions"].items():
        assert set(row["tokens_per_s"]) == SPREAD and row["tokens_per_s"]["n"] == 2
        assert row["tokens_per_run"] == (2 if name in ("int8", "int4") else 3)
        assert report["roofline_fraction"][name] == row["roofline_fraction"] > 0
        assert row["bytes_per_token_24_layers"] > row["bytes_per_token"] > 0
        assert row["tokens_per_s_24_layers"] > 0 and row["prefill_gflop_s"] > 0
        assert 0 <= row["logits_vs_fp32"]["top1_agreement"] <= 1
    fp32 = report["precisions"]["fp32"]
    assert fp32["logits_vs_fp32"] == {"max_relative_error": 0.0, "median_relative_error": 0.0, "top1_agreement": 1.0}
    assert fp32["speedup_vs_fp32"] == 1.0
    read = {name: row["bytes_per_token"] for name, row in report["precisions"].items()}
    assert read["int4-fused"] < read["int8-fused"] < 0.5 * read["fp32"]  # fewer bytes per weight read per token
    assert read["int8-dynamic"] == read["int8-fused"]  # the same integers; only the activations differ
    for name in ("int8-fused", "int8-dynamic"):
        int8 = report["precisions"][name]["logits_vs_fp32"]
        assert int8["max_relative_error"] < 0.1 and int8["top1_agreement"] >= 0.75, name


def test_bytes_and_flops_follow_the_shapes():
    config = preset("tiny")
    llm = build_stack(RealWidthConfig(llm=config, layers=1))
    weights = sum(p.numel() * 4 for p in llm.model.layers[0].parameters())
    assert layer_bytes(llm, context=10) == weights + 2 * config.num_key_value_heads * config.head_dim * 10 * 4
    d, kv, m = config.hidden_size, config.num_key_value_heads * config.head_dim, config.intermediate_size
    one = prefill_flops(llm.config, 1)
    assert one == 2 * (2 * d * d + 2 * d * kv + 3 * d * m) + 4 * d + 2 * d * config.vocab_size


def test_real_width_config_names_bad_settings():
    with pytest.raises(ValueError, match="must include fp32"):
        RealWidthConfig(precisions=("int8",))
    with pytest.raises(ValueError, match="must be >= 1"):
        RealWidthConfig(layers=0)
