"""Benchmarks and energy: the bench JSON has every named field with sane types (never timing values), RAPL and its
fallback."""

import json

import pytest
import torch

from mobilevlm_mini.__main__ import main
from mobilevlm_mini.bench import BenchConfig, at_precision, bytes_per_token, spread
from mobilevlm_mini.checkpoint import save_checkpoint
from mobilevlm_mini.config import TrainConfig, VLMConfig
from mobilevlm_mini.data import shapes_tokenizer
from mobilevlm_mini.energy import RAPL_METHOD, EnergyMeter, energy_method, rapl_zones
from mobilevlm_mini.language import kv_cache_bytes, preset
from mobilevlm_mini.model import MobileVLM
from mobilevlm_mini.vision import ViTConfig

SPREAD = {"median", "min", "max", "q1", "q3", "n"}
STAGES = ("vision_ms", "projector_ms", "prefill_ms", "decode_tokens_per_s", "answer_ms")


def small_config() -> TrainConfig:
    vit = ViTConfig(image_size=64, patch_size=16, dim=32, depth=2, heads=2)
    llm = preset("tiny", vocab_size=shapes_tokenizer().vocab_size, hidden_size=64, intermediate_size=128,
                 num_hidden_layers=2)
    return TrainConfig(model=VLMConfig(vit=vit, llm=llm))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained small MobileVLM saved as `train` saves one: bench measures speed, not answers."""
    torch.manual_seed(0)
    config = small_config()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), MobileVLM(config.model), config)


@pytest.fixture(scope="module")
def report(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = ["bench", "--ckpt", str(checkpoint), "--json", str(out), "--threads", "1", "2", "--repeats", "2",
            "--warmup", "0", "--new-tokens", "2"]
    assert main(args) == 0
    return json.loads(out.read_text())


def test_bench_json_has_every_field_with_sane_types(report, checkpoint):
    assert report["checkpoint"] == str(checkpoint)
    settings = report["settings"]
    assert settings["precisions"] == ["fp32", "int8", "int4"] and settings["threads"] == [1, 2]
    assert settings["repeats"] == 2 and settings["new_tokens"] == 2 and settings["visual_tokens"] == 4
    assert isinstance(settings["prompt_tokens"], int) and settings["prompt_tokens"] > settings["visual_tokens"]
    assert {"cpu", "cores", "torch"} <= set(report["machine"])
    assert {"bytes_moved", "best_gb_s", "median_gb_s"} <= set(report["memory_bandwidth"])
    assert report["energy_method"] == RAPL_METHOD or report["energy_method"].startswith("estimate:")
    assert ([(r["precision"], r["threads"]) for r in report["results"]]
            == [(p, t) for p in ("fp32", "int8", "int4") for t in (1, 2)])
    for row in report["results"]:
        for stage in STAGES:
            s = row[stage]
            assert set(s) == SPREAD and s["n"] == 2 and s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
            assert s["min"] > 0
        assert isinstance(row["energy_per_answer_j"], float) and row["energy_per_answer_j"] >= 0
        assert row["energy_method"] == report["energy_method"]  # labelled on every row, not only once
        assert row["cpu_seconds_per_answer"] >= 0 and row["peak_rss_mib"] > 0
        assert isinstance(row["weights_bytes"], int) and row["llm_weights_bytes"] < row["weights_bytes"]
    sizes = {r["precision"]: r["llm_weights_bytes"] for r in report["results"]}
    assert sizes["fp32"] > sizes["int8"] > sizes["int4"]
    cc = report["codecarbon"]
    assert cc["country_iso_code"] == "FRA" and cc["answers"] >= 1 and "codecarbon" in cc["method_difference"]
    for key in ("cpu_j_per_answer", "ram_j_per_answer", "ours_j_per_answer"):
        assert isinstance(cc[key], float) and cc[key] >= 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--precisions", "fp16"], "unknown precisions ['fp16']"),
        (["--threads", "0"], "threads must be numbers >= 1"),
        (["--repeats", "0"], "need repeats >= 1"),
    ],
)
def test_bench_bad_settings_are_one_clear_line(checkpoint, capsys, args, message):
    assert main(["bench", "--ckpt", str(checkpoint), "--no-codecarbon", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_bench_has_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "--help"])
    assert done.value.code == 0 and "--ckpt" in capsys.readouterr().out


def test_bench_refuses_a_missing_checkpoint(tmp_path, capsys):
    assert main(["bench", "--ckpt", str(tmp_path / "nope"), "--no-codecarbon"]) == 2
    assert "no checkpoint folder" in capsys.readouterr().err


def test_spread_of_known_values():
    assert spread([4.0, 1.0, 3.0, 2.0, 5.0]) == {"median": 3.0, "min": 1.0, "max": 5.0, "q1": 2.0, "q3": 4.0, "n": 5}
    assert spread([7.0])["q1"] == 7.0


def test_bytes_per_token_counts_weights_once_and_the_kv_cache():
    torch.manual_seed(0)
    model = MobileVLM(small_config().model)
    llm, hidden = model.llm, model.config.llm.hidden_size
    params = sum(p.numel() for p in llm.parameters())
    table = llm.model.embed_tokens.weight.numel()
    assert bytes_per_token(llm, 10) == 4 * (params - table + hidden) + kv_cache_bytes(llm.config, 10, bytes_per_value=4)
    int4 = at_precision(model, "int4", group_size=32)
    assert bytes_per_token(int4.llm, 10) < bytes_per_token(llm, 10) / 3
    with pytest.raises(ValueError, match="unknown precision"):
        at_precision(model, "fp8")


def test_bench_config_is_checked():
    with pytest.raises(ValueError, match="new_tokens"):
        BenchConfig(new_tokens=0)


# ---------------------------------------------------------------- energy


def fake_powercap(root, package_uj: int, max_uj: int = 1_000_000):
    """A powercap folder like Linux's: one package zone, a core subzone, an unreadable zone."""
    for name, value in (("intel-rapl:0", package_uj), ("intel-rapl:0:0", 5), ("intel-rapl:1", "garbage")):
        (root / name).mkdir(exist_ok=True)
        (root / name / "energy_uj").write_text(f"{value}\n")
        (root / name / "max_energy_range_uj").write_text(f"{max_uj}\n")


def test_rapl_counts_package_zones_only_and_handles_wrap_around(tmp_path):
    fake_powercap(tmp_path, 900_000)
    assert [z.name for z in rapl_zones(tmp_path)] == ["intel-rapl:0"]
    assert energy_method(tmp_path) == RAPL_METHOD
    with EnergyMeter(root=tmp_path) as meter:
        fake_powercap(tmp_path, 200_000)  # the counter passed 1,000,000 uJ and started again from 0
    assert meter.reading.measured and meter.reading.method == RAPL_METHOD
    assert meter.reading.joules == pytest.approx(0.3)


def test_without_rapl_the_figure_is_a_labelled_estimate(tmp_path):
    with EnergyMeter(watts_per_core=4.0, root=tmp_path) as meter:
        sum(i * i for i in range(200_000))
    reading = meter.reading
    assert not reading.measured and reading.method.startswith("estimate:") and "4 W per busy core" in reading.method
    assert reading.joules == pytest.approx(4.0 * reading.cpu_seconds)
    assert "estimate" in energy_method(tmp_path)
    with pytest.raises(ValueError, match="watts_per_core"):
        EnergyMeter(watts_per_core=0)
