"""Measured results, summarised the same way everywhere: the seeds table, the recipe search, their intervals.

The tools in tools/ write JSON files into assets/measured/; lessons and the README quote them through these
functions, so a number in prose is read from a file a tool wrote, never typed in.

Public API
- `MEASURED`: the folder of results files (assets/measured).
- `t_interval(values)` -> (mean, low, high): the mean of independent runs and its 95% t-interval.
- `seeds_summary(runs)`: mean (interval), worst and best seed, each type's mean and worst, median time from nothing.
- `seeds_markdown(results)`: the seeds table (one row per seed, then mean and worst) as Markdown.
- `recipe_variants(folder)`: tools/recipe_search.py's runs grouped by variant, each with its `t_interval`s;
  `recipe_markdown(variants, types)`: them as a Markdown table.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from mobilevlm_mini.data import QUESTION_TYPES

MEASURED = Path(__file__).resolve().parent.parent / "assets" / "measured"
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # t(0.975, df)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean of independent runs and its 95% t-interval (low, high); a single run gives (x, x, x)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    if len(values) - 1 not in T_975:
        raise ValueError(f"t_interval knows 2 to {max(T_975) + 1} runs, got {len(values)}")
    half = T_975[len(values) - 1] * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def seeds_summary(runs: list[dict]) -> dict:
    """Mean (95% t-interval), worst and best seed, each type's mean and worst seed, median seconds from nothing."""
    scores = [r["exact_match"] for r in runs]
    mean, low, high = t_interval(scores)
    cold = [r["wall_seconds"] for r in runs if r["from_nothing"]]
    return {
        "seeds": [r["seed"] for r in runs], "mean": mean, "ci95": [low, high], "min": min(scores), "max": max(scores),
        "type_mean": {k: statistics.fmean(r["per_type"][k] for r in runs) for k in QUESTION_TYPES},
        "type_min": {k: min(r["per_type"][k] for r in runs) for k in QUESTION_TYPES},
        "from_nothing_median_seconds": statistics.median(cold) if cold else None, "from_nothing_runs": len(cold),
    }


def seeds_markdown(results: dict) -> str:
    """The seeds table as Markdown: one row per seed (overall and per type, %), then the mean and the worst seed."""
    lines = ["| seed | overall | " + " | ".join(QUESTION_TYPES) + " | time |", "|" + "---|" * (len(QUESTION_TYPES) + 3)]
    for r in results["runs"]:
        took = f"{r['wall_seconds']:.0f} s from nothing" if r["from_nothing"] else f"{r['wall_seconds']:.0f} s (warm)"
        lines.append(f"| {r['seed']} | **{100 * r['exact_match']:.1f}** | "
                     + " | ".join(f"{100 * r['per_type'][k]:.1f}" for k in QUESTION_TYPES) + f" | {took} |")
    s = results["summary"]
    for name, overall, per_type in (("mean", s["mean"], s["type_mean"]), ("worst", s["min"], s["type_min"])):
        lines.append(f"| {name} | **{100 * overall:.1f}** | "
                     + " | ".join(f"{100 * per_type[k]:.1f}" for k in QUESTION_TYPES) + " | |")
    return "\n".join(lines)


def recipe_variants(folder: str | Path = MEASURED / "recipe_search") -> dict[str, dict]:
    """tools/recipe_search.py's runs by variant: what it changes, its seeds, and for the overall score, each type and
    the training seconds a `t_interval` over its seeds."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        run = json.loads(path.read_text())
        runs.setdefault(run["variant"], []).append(run)
    return {
        name: {
            "what": group[0]["what"], "overrides": group[0]["overrides"], "seeds": [r["seed"] for r in group],
            "exact_match": t_interval([r["exact_match"] for r in group]),
            "per_type": {k: t_interval([r["per_type"][k] for r in group]) for k in group[0]["per_type"]},
            "train_seconds": t_interval([r["train_seconds"] for r in group]),
        }
        for name, group in runs.items()
    }


def recipe_markdown(variants: dict[str, dict], types: tuple[str, ...] = ("count", "neighbour")) -> str:
    """The recipe search as Markdown: per variant its seeds, validation exact match (mean [95% interval]) and the
    chosen types' means. (Its runs shared the CPU with other work: times come from the seeds table.)"""
    def cell(interval: tuple[float, float, float]) -> str:
        mean, low, high = (100 * x for x in interval)
        return f"{mean:.1f} [{low:.1f}, {high:.1f}]"

    lines = ["| variant | what it changes | seeds | validation exact match, % | " + " | ".join(types)
             + " |", "|" + "---|" * (len(types) + 4)]
    for name, v in variants.items():
        lines.append(f"| {name} | {v['what']} | {len(v['seeds'])} | {cell(v['exact_match'])} | "
                     + " | ".join(f"{100 * v['per_type'][k][0]:.1f}" for k in types) + " |")
    return "\n".join(lines)
