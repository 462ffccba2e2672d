"""Run every lesson in order from an empty cache, then again warm, and write how long each took.

This is the learner's path measured: lesson 00 to the last one, top to bottom, in full mode, on a
cache that starts empty, so each cached piece (data splits, encoders, the trained VLM) is built by the
first lesson that needs it and read by every later one. The log of what each lesson built shows that
nothing is built twice. Lessons that built something are then run again with the cache warm.

Writes assets/measured/lesson_times.json (with the machine: CPU, cores, torch, `doctor`'s compute
figure), then the run-time sentence of each lesson's first cell and the README's table from it.
Usage: python tools/lesson_times.py [--save] [--apply] [--add] [--cache DIR] [NOTEBOOK...]
  --save   keep the executed notebooks' outputs (the full-mode run learners read); default: run copies
  --apply  only rewrite the lessons' first cells and the README from the existing results file (no runs)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
from run_notebooks import run  # noqa: E402  (a sibling script, not a package)

from mobilevlm_mini.doctor import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "assets" / "measured" / "lesson_times.json"
# What --apply rewrites in each lesson's first cell: the run-time part of its "**Time:**" paragraph.
RUN_TIME = re.compile(r"(\*\*Time:\*\* about \d+ minutes to study; ).*?(?=\n\n|\n\*\*|\Z)", re.S)
README_ROW = re.compile(r"^\| (\d\d) \| .*\|$", re.M)  # a lesson's row; its 6th cell is "runs in"
RUNS_IN = 5


def cache_entries(cache: Path) -> set[str]:
    """Every cached piece, as 'kind/name' (data/..., models/..., vlm/...); half-written ones excluded."""
    if not cache.is_dir():
        return set()
    return {
        f"{kind.name}/{entry.name}" for kind in cache.iterdir() if kind.is_dir()
        for entry in kind.iterdir() if not entry.name.startswith(".") and not entry.name.endswith(".partial")
    }


def timed(path: Path, save: bool) -> float:
    """Seconds to run one notebook in full mode; its outputs kept only when `save`."""
    if save:
        return run(path, quick=False)
    copy = path.parent / f".timing-{path.name}"  # same folder: the notebook's relative paths still hold
    shutil.copy(path, copy)
    try:
        return run(copy, quick=False)
    finally:
        copy.unlink(missing_ok=True)


def measure(lessons: list[Path], cache: Path, save: bool) -> dict:
    """The in-order run from an empty cache (what each lesson built), then the warm re-runs."""
    os.environ["MOBILEVLM_MINI_DATA"] = str(cache)
    cold, built_by = [], {}
    for path in lessons:
        before = cache_entries(cache)
        seconds = timed(path, save)
        built = sorted(cache_entries(cache) - before)
        for entry in built:
            built_by.setdefault(entry, []).append(path.stem[:2])
        cold.append({"lesson": path.stem[:2], "notebook": path.name, "seconds": round(seconds, 1), "built": built})
        print(f"{seconds:7.1f} s  cold  {path.name}  built {len(built)}: {', '.join(built) or '-'}", flush=True)
    warm = {}
    for row, path in zip(cold, lessons, strict=True):
        seconds = timed(path, save=False) if row["built"] else row["seconds"]
        warm[row["lesson"]] = round(seconds, 1)
        if row["built"]:
            print(f"{seconds:7.1f} s  warm  {path.name}", flush=True)
    return {
        "machine": machine(),
        "note": "full mode, lessons in order from an empty cache (cold), "
                "then lessons that built something again (warm)",
        "cold_in_order": cold,
        "warm_seconds": warm,
        "total_cold_seconds": round(sum(row["seconds"] for row in cold), 1),
        "built_twice": sorted(entry for entry, lessons_ in built_by.items() if len(lessons_) > 1),
    }


def merged(old: dict, new: dict) -> dict:
    """`old` results with the lessons measured in `new` replaced or added (a new lesson, measured after the others)."""
    measured = {row["lesson"] for row in new["cold_in_order"]}
    before = {row["lesson"]: row for row in old["cold_in_order"]}
    # a lesson re-run on a warm cache built nothing: its first-time run (which built pieces) stays the cold one,
    # and the new run counts as its warm time
    again = [before[r["lesson"]] if not r["built"] and before.get(r["lesson"], {}).get("built") else r
             for r in new["cold_in_order"]]
    cold = sorted([r for r in old["cold_in_order"] if r["lesson"] not in measured] + again, key=lambda r: r["lesson"])
    return {**old, "cold_in_order": cold, "warm_seconds": {**old["warm_seconds"], **new["warm_seconds"]},
            "total_cold_seconds": round(sum(r["seconds"] for r in cold), 1),
            "built_twice": sorted(set(old["built_twice"]) | set(new["built_twice"])),
            "added": [*old.get("added", []), {"lessons": sorted(measured), "machine": new["machine"],
                                              "note": "run later, on the cache the lessons before it filled"}]}


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def slower_first(results: dict, row: dict) -> bool:
    """Whether building cached pieces made a lesson's first run noticeably longer (> 5 s and > 10%) than a warm one."""
    extra = row["seconds"] - results["warm_seconds"][row["lesson"]]
    return bool(row["built"]) and extra > max(5.0, 0.1 * results["warm_seconds"][row["lesson"]])


def sentence(results: dict, lesson: str) -> str:
    """The lesson's run-time sentence, from the results file."""
    row = next(r for r in results["cold_in_order"] if r["lesson"] == lesson)
    gflops = results["machine"]["doctor_gflops"]
    text = f"Run All takes {_minutes(results['warm_seconds'][lesson])} with warm caches (`make warm`)"
    if slower_first(results, row):
        pieces = f"{len(row['built'])} cached piece" + "s" * (len(row["built"]) > 1)
        text += f", {_minutes(row['seconds'])} the first time in course order, when it builds {pieces}"
    return text + (f"; measured on a {results['machine']['cores']}-core CPU whose `doctor` compute figure is"
                   f" {gflops:.0f} GFLOP/s (`assets/measured/lesson_times.json`; scale by yours).")


def apply(results: dict, lessons: list[Path]) -> None:
    """Write each lesson's run-time sentence into its first cell, and the README's 'runs in' column."""
    for path in lessons:
        lesson = path.stem[:2]
        if lesson not in results["warm_seconds"]:
            continue
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        new = sentence(results, lesson)
        if not RUN_TIME.search(first.source):
            raise SystemExit(f"{path.name}: its first cell has no '**Time:** about N minutes to study; ...' paragraph")
        first.source = RUN_TIME.sub(lambda match, new=new: match.group(1) + new, first.source)
        nbformat.write(nb, path)
    readme = ROOT / "README.md"
    text = readme.read_text()

    def row(match: re.Match) -> str:
        cells = match.group(0)[2:-2].split(" | ")
        lesson = match.group(1)
        if lesson in results["warm_seconds"]:
            first = next(r for r in results["cold_in_order"] if r["lesson"] == lesson)
            cells[RUNS_IN] = _minutes(results["warm_seconds"][lesson]) + (
                f" (first time: {_minutes(first['seconds'])})" if slower_first(results, first) else "")
        return "| " + " | ".join(cells) + " |"

    text = README_ROW.sub(row, text)
    built = sum(r["seconds"] - results["warm_seconds"][r["lesson"]] for r in results["cold_in_order"] if r["built"])
    total = (f"{_minutes(results['total_cold_seconds'])}, of which about {_minutes(built)} built the cached pieces "
             f"(`make warm` builds them all ahead)")
    text = re.sub(r"(<!-- total-run -->).*?(<!-- /total-run -->)", lambda m: f"{m.group(1)}{total}{m.group(2)}", text)
    readme.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--save", action="store_true", help="keep the cold run's outputs in the notebooks")
    parser.add_argument("--apply", action="store_true",
                        help="only rewrite first cells and README from the results file")
    parser.add_argument("--cache", type=Path, help="cache folder to start from (default: a new empty one)")
    parser.add_argument("--add", action="store_true",
                        help="merge the lessons measured now into the existing results (a lesson added later, run "
                             "on the cache the lessons before it filled: pass that cache with --cache)")
    args = parser.parse_args()
    lessons = args.notebooks or sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
    if not args.apply:
        cache = args.cache or Path(tempfile.mkdtemp(prefix="mobilevlm-cold-"))
        results = measure(lessons, cache, args.save)
        if args.add:
            results = merged(json.loads(RESULTS.read_text()), results)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}: {results['total_cold_seconds']:.0f} s in all; "
              f"built twice: {results['built_twice'] or 'nothing'}")
    apply(json.loads(RESULTS.read_text()), lessons)
    return 0


if __name__ == "__main__":
    sys.exit(main())
