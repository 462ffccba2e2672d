"""Measured results, summarised the same way everywhere: the seeds table, the recipe search, their intervals.

The tools in tools/ write JSON files into assets/measured/; lessons and the README quote them through these
functions, so a number in prose is read from a file a tool wrote, never typed in.

Public API
- `MEASURED`: the folder of results files (assets/measured).
- `t_interval(values)` -> (mean, low, high): the mean of independent runs and its 95% t-interval.
- `seeds_summary(runs)`: mean (interval), worst and best seed, each type's mean and worst, median time from nothing.
- `seeds_markdown(results)`: the seeds table (one row per seed, then mean and worst) as Markdown.
- `recipe_runs(folder)`: tools/recipe_search.py's runs grouped by variant; `recipe_variants(folder)`: each variant's
  seeds, scores, `stage2_answers(config)` and `t_interval`s;
  `recipe_markdown(variants, types)`: them as a Markdown table.
- `paired_differences(runs, base)`: each variant minus `base`, seed by seed (the same seeds), with a
  `t_interval`; `verdict(interval)`: what such an interval supports, in words; `score(run, key)`: one run's score.
- `marker_problems(text, measured)`: every number in prose marked `<!-- measured: FILE.json:dotted.path -->` that
  differs from its results file beyond the rounding of its printed digits (or whose file or field is missing);
  `results_read(source)`: the results files a notebook's code reads.
"""

from __future__ import annotations

import json
import re
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


def recipe_runs(folder: str | Path = MEASURED / "recipe_search") -> dict[str, list[dict]]:
    """tools/recipe_search.py's runs (one JSON file each), grouped by variant, in file-name order."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        run = json.loads(path.read_text())
        runs.setdefault(run["variant"], []).append(run)
    return runs


def stage2_answers(config: dict) -> int:
    """The answers a recipe trains on in stage 2 (steps x images x questions per image): its stage-2 compute."""
    instruct = config["instruct"]
    return instruct["steps"] * instruct["batch_size"] * (instruct["max_turns"] or 1)


def recipe_variants(folder: str | Path = MEASURED / "recipe_search") -> dict[str, dict]:
    """tools/recipe_search.py's runs by variant (the default first): what it changes, its seeds and their scores, its
    stage-2 answers (`stage2_answers`), and for the overall score, each type, the training seconds and the drawn
    split (where its runs scored it) a `t_interval` over its seeds."""
    variants = {}
    runs = recipe_runs(folder)
    for name, group in sorted(runs.items(), key=lambda item: item[0] != "default"):  # the default first
        drawn = [r["drawn_exact_match"] for r in group if "drawn_exact_match" in r]
        variants[name] = {
            "what": group[0]["what"], "overrides": group[0]["overrides"], "seeds": [r["seed"] for r in group],
            "scores": [r["exact_match"] for r in group], "stage2_answers": stage2_answers(group[0]["config"]),
            "exact_match": t_interval([r["exact_match"] for r in group]),
            "per_type": {k: t_interval([r["per_type"][k] for r in group]) for k in group[0]["per_type"]},
            "train_seconds": t_interval([r["train_seconds"] for r in group]),
            "drawn": t_interval(drawn) if drawn else None,
        }
    return variants


def recipe_markdown(variants: dict[str, dict], types: tuple[str, ...] = ("count", "neighbour")) -> str:
    """The recipe search as Markdown: per variant its seeds, stage-2 answers, validation exact match (mean [95%
    interval]), the chosen types' means and the drawn split's mean. (Its runs shared the CPU with other work: times
    come from the seeds table.)"""
    def cell(interval: tuple[float, float, float], runs: int) -> str:
        mean, low, high = (100 * x for x in interval)  # a score cannot pass 100%: the interval is cut there
        return f"{mean:.1f} [{low:.1f}, {min(high, 100):.1f}]" if runs > 1 else f"{mean:.1f} (one seed)"

    lines = ["| variant | what it changes | seeds | stage-2 answers | validation exact match, % | " + " | ".join(types)
             + " | drawn, % |", "|" + "---|" * (len(types) + 6)]
    for name, v in variants.items():
        drawn = f"{100 * v['drawn'][0]:.1f}" if v["drawn"] else "not scored"
        lines.append(f"| {name} | {v['what']} | {len(v['seeds'])} | {v['stage2_answers'] // 1000}k | "
                     f"{cell(v['exact_match'], len(v['seeds']))} | "
                     + " | ".join(f"{100 * v['per_type'][k][0]:.1f}" for k in types) + f" | {drawn} |")
    return "\n".join(lines)


def score(run: dict, key: str = "exact_match") -> float:
    """A run's exact match overall ("exact_match") or on one question type; per-type scores are numbers
    (tools/recipe_search.py) or {"exact_match", "n"} (`train`'s metrics.json)."""
    if key == "exact_match":
        return run["exact_match"]
    value = run["per_type"][key]
    return value["exact_match"] if isinstance(value, dict) else value


def paired_differences(runs: str | Path | dict[str, list[dict]] = MEASURED / "recipe_search", base: str = "default",
                       key: str = "exact_match") -> dict[str, dict]:
    """Per variant: its score minus `base`'s on each seed both ran (paired: the same seed, the same batches), and the
    `t_interval` of those differences. `runs`: a folder of tools/recipe_search.py's runs, or runs grouped by variant
    (e.g. lesson 08's projectors); `key` is "exact_match" or a question type."""
    groups = runs if isinstance(runs, dict) else recipe_runs(runs)
    scores = {name: {r["seed"]: score(r, key) for r in group} for name, group in groups.items()}
    if base not in scores:
        raise ValueError(f"no runs of the base variant {base!r} among {sorted(scores)}")
    result = {}
    for name, by_seed in scores.items():
        seeds = sorted(set(by_seed) & set(scores[base]))
        if name == base or not seeds:
            continue
        differences = [by_seed[seed] - scores[base][seed] for seed in seeds]
        result[name] = {"seeds": seeds, "differences": differences, "interval": t_interval(differences)}
    return result


def verdict(interval: tuple[float, float, float]) -> str:
    """What a 95% interval of a difference supports: better, worse, or no difference detectable."""
    _, low, high = interval
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no difference detectable at this number of seeds"


# ---------------------------------------------------------------- provenance

# a number, its unit, then the marker naming where it comes from: "96.9%<!-- measured: seeds.json:summary.mean -->"
MARKER = re.compile(r"(?P<number>\d[\d,]*(?:\.\d+)?)(?P<unit>%| ?s\b| ?x\b| ?GFLOP/s)?\**\s*"
                    r"<!-- measured: (?P<file>[\w./-]+\.json):(?P<path>[\w.-]+) -->")
READS = (re.compile(r"""MEASURED\s*/\s*["'](?P<file>[\w./-]+)["']"""),  # a file or a folder of them
         re.compile(r"assets/measured/(?P<file>[\w./-]+\.json)"))


def lookup(data, path: str):
    """The value at a dotted path of parsed JSON ('summary.mean', 'runs.0.exact_match')."""
    for key in path.split("."):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def marker_problems(text: str, measured: str | Path = MEASURED) -> list[str]:
    """One line per marked number that is not its results file's value rounded as printed (a % reads a fraction as
    percent), or whose file or field does not exist."""
    problems, files = [], {}
    for match in MARKER.finditer(text):
        name, path, printed = match["file"], match["path"], match["number"].replace(",", "")
        where = f"{printed}{match['unit'] or ''} <- {name}:{path}"
        file = Path(measured) / name
        if not file.is_file():
            problems.append(f"{where}: no results file {file}")
            continue
        try:
            value = float(lookup(files.setdefault(name, json.loads(file.read_text())), path))
        except (KeyError, IndexError, ValueError, TypeError):
            problems.append(f"{where}: no such field in {name}")
            continue
        value *= 100 if match["unit"] == "%" else 1
        decimals = len(printed.partition(".")[2])
        if abs(float(printed) - value) > 0.5 * 10**-decimals + 1e-9:
            problems.append(f"{where}: the file says {value:.{decimals + 2}f}")
    return problems


def results_read(source: str) -> set[str]:
    """The results files and folders (names under assets/measured) that code reads: `MEASURED / "x.json"` or a path."""
    return {match["file"] for pattern in READS for match in pattern.finditer(source)}
