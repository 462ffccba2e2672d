"""Every numbered lesson has the shape the course promises (the notebooks themselves run under nbval)."""

import json
import re
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((LESSONS / "solutions").glob("*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def text(nb: dict, kind: str) -> str:
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind)


def test_numbering_has_no_gaps():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers, "no lessons found"
    assert numbers == list(range(len(numbers))), f"lesson numbers {numbers} have gaps or repeats"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_opens_with_title_goals_and_time(path):
    first = "".join(load(path)["cells"][0]["source"])
    assert first.startswith(f"# Lesson {path.name[:2]}"), "first cell must be the title '# Lesson NN ...'"
    assert "You will be able to" in first, "state the goals up front"
    assert re.search(r"Time:\**\s*about \d+ minutes", first), "state the time ('Time: about N minutes')"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_has_self_checks_and_exercises_with_solutions(path):
    nb = load(path)
    assert re.search(r"^\s*assert ", text(nb, "code"), re.M), "needs at least one assert self-check"
    markdown = text(nb, "markdown")
    assert "## Exercises" in markdown
    assert len(re.findall(r"^### Exercise \d", markdown, re.M)) >= 3, "needs at least 3 exercises"
    assert (LESSONS / "solutions" / path.name).exists(), f"solutions go in lessons/solutions/{path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.stem)
def test_saved_outputs_are_clean(path):
    nb = load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(c["outputs"] for c in code), "commit the outputs of a full run (make notebooks)"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"saved error output: {errors[0].get('ename')}"
    counts = [c["execution_count"] for c in code if c["source"]]
    assert counts == list(range(1, len(counts) + 1)), "re-run top to bottom on a fresh kernel (make notebooks)"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, "clean metadata (make notebooks)"


def test_every_solution_belongs_to_a_lesson():
    assert {p.name for p in SOLUTIONS} == {p.name for p in NOTEBOOKS}


def test_readme_links_every_lesson_with_its_thumbnail():
    readme = (LESSONS.parent / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"(lessons/{path.name})" in readme, f"README's lesson table does not link {path.name}"
        thumbnail = LESSONS.parent / "assets" / "thumbnails" / f"{path.name[:2]}.png"
        assert thumbnail.is_file(), f"{thumbnail} is missing: run tools/thumbnails.py"
    for linked in re.findall(r"\(lessons/([^)/]+\.ipynb)\)", readme):
        assert (LESSONS / linked).is_file(), f"README links lessons/{linked}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS[:-1], ids=lambda p: p.name)
def test_each_lesson_links_the_next(path):
    following = NOTEBOOKS[NOTEBOOKS.index(path) + 1].name
    assert following in text(load(path), "markdown"), f"{path.name} should end with a link to {following}"
