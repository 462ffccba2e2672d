"""Summaries of measured results: intervals, the seeds table, the recipe search."""

import json

import pytest

from mobilevlm_mini.data import QUESTION_TYPES
from mobilevlm_mini.results import (
    paired_differences,
    recipe_markdown,
    recipe_variants,
    seeds_markdown,
    seeds_summary,
    t_interval,
    verdict,
)


def test_t_interval_of_known_values():
    mean, low, high = t_interval([0.94, 0.96, 0.95])  # sd 0.01, n 3: half-width 4.303 * 0.01 / sqrt(3)
    assert mean == pytest.approx(0.95) and high - mean == pytest.approx(4.303 * 0.01 / 3**0.5)
    assert t_interval([0.9]) == (0.9, 0.9, 0.9)
    with pytest.raises(ValueError, match="t_interval knows 2 to 10 runs"):
        t_interval([0.5] * 11)


def run(seed: int, score: float, from_nothing: bool) -> dict:
    return {"seed": seed, "exact_match": score, "per_type": {k: score for k in QUESTION_TYPES},
            "wall_seconds": 200.0 + seed, "from_nothing": from_nothing}


def test_seeds_summary_and_table():
    runs = [run(0, 0.97, True), run(1, 0.95, True), run(2, 0.96, False)]
    summary = seeds_summary(runs)
    assert summary["mean"] == pytest.approx(0.96) and summary["min"] == 0.95 and summary["max"] == 0.97
    assert summary["type_min"]["count"] == 0.95 and summary["from_nothing_median_seconds"] == 200.5
    table = seeds_markdown({"runs": runs, "summary": summary}).splitlines()
    assert len(table) == 2 + 3 + 2 and table[2].startswith("| 0 | **97.0** |") and "from nothing" in table[2]
    assert table[-1].startswith("| worst | **95.0** |")


def test_recipe_variants_group_runs_by_variant(tmp_path):
    for name, seed, score in (("default", 0, 0.95), ("default", 1, 0.93), ("weights2", 0, 0.97)):
        steps = 2000 if name == "weights2" else 1000
        drawn = {"drawn_exact_match": 0.6} if name == "weights2" else {}  # older runs did not score it
        (tmp_path / f"{name}-seed{seed}.json").write_text(json.dumps({
            "variant": name, "what": f"{name} recipe", "overrides": {}, "seed": seed, "exact_match": score,
            "per_type": {"count": score - 0.1, "neighbour": score - 0.2}, "train_seconds": 100.0,
            "config": {"instruct": {"steps": steps, "batch_size": 128, "max_turns": 1}}, **drawn}))
    variants = recipe_variants(tmp_path)
    assert variants["default"]["seeds"] == [0, 1] and variants["default"]["exact_match"][0] == pytest.approx(0.94)
    assert variants["weights2"]["exact_match"] == (0.97, 0.97, 0.97)
    assert variants["default"]["stage2_answers"] == 128_000 and variants["weights2"]["stage2_answers"] == 256_000
    assert variants["default"]["drawn"] is None and variants["weights2"]["drawn"] == (0.6, 0.6, 0.6)
    table = recipe_markdown(variants).splitlines()
    assert len(table) == 4 and "| default | default recipe | 2 | 128k | 94.0 [" in table[2]
    assert table[2].endswith("| not scored |") and table[3].endswith("| 60.0 |")


def test_paired_differences_and_their_verdicts(tmp_path):
    for name, seed, score in (("default", 0, 0.90), ("default", 1, 0.92), ("default", 2, 0.94),
                              ("better", 0, 0.95), ("better", 1, 0.96), ("better", 2, 0.99),
                              ("noisy", 0, 0.99), ("noisy", 1, 0.85), ("noisy", 2, 0.95), ("alone", 5, 0.9)):
        (tmp_path / f"{name}-seed{seed}.json").write_text(json.dumps({
            "variant": name, "seed": seed, "exact_match": score, "per_type": {"count": score}}))
    paired = paired_differences(tmp_path)
    assert set(paired) == {"better", "noisy"}  # "alone" shares no seed with the default
    assert paired["better"]["differences"] == pytest.approx([0.05, 0.04, 0.05])
    assert verdict(paired["better"]["interval"]) == "better"
    assert verdict(paired["noisy"]["interval"]).startswith("no difference detectable")
    assert verdict((-0.02, -0.03, -0.01)) == "worse"
    assert paired_differences(tmp_path, key="count")["better"]["differences"] == pytest.approx([0.05, 0.04, 0.05])
    with pytest.raises(ValueError, match="no runs of the base variant 'nope'"):
        paired_differences(tmp_path, base="nope")
    grouped = {"mlp": [{"seed": s, "exact_match": 0.9, "per_type": {"count": {"exact_match": 0.8, "n": 9}}}
                       for s in (0, 1)],
               "ldp": [{"seed": s, "exact_match": 0.9 + s / 100, "per_type": {"count": {"exact_match": 0.7, "n": 9}}}
                       for s in (0, 1)]}  # train's metrics.json: per-type scores with their counts
    assert paired_differences(grouped, base="mlp")["ldp"]["differences"] == pytest.approx([0.0, 0.01])
    assert paired_differences(grouped, base="mlp", key="count")["ldp"]["differences"] == pytest.approx([-0.1, -0.1])
