"""Every number quoted in prose comes from somewhere: marked numbers match their results files, the files that
lessons read exist, and the README's generated blocks are what their tools write."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from mobilevlm_mini.results import MARKER, MEASURED, lookup, marker_problems, results_read

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb")) + sorted((ROOT / "lessons" / "solutions").glob("*.ipynb"))
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "instructor-guide.md"]


def prose(path: Path) -> str:
    """A document's text, or a notebook's markdown cells."""
    if path.suffix != ".ipynb":
        return path.read_text()
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS + DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_marked_numbers_match_their_results_files(path):
    assert marker_problems(prose(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_results_files_a_lesson_reads_exist(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    missing = sorted(name for name in results_read(code) if not (MEASURED / name).exists())
    assert missing == [], f"{path.name} reads {missing} from {MEASURED}, which are missing: run their tools/ script"


FIGURE = re.compile(r"(?<![\w.])(\d+\.\d+)\s?(%|x\b|×| s\b| ms\b| tok/s)")  # as ../shared/hooks/untraced-numbers


def outputs(path: Path) -> str:
    """The text a notebook's saved outputs show."""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [out.get("data", {}).get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return " ".join(parts)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_figure_in_the_documents_is_marked_or_printed(path):
    """A figure with a decimal point and a unit in the README or the instructor guide carries a marker, or a lesson's
    (or solution's) saved outputs or a results file print it as written."""
    printed = " ".join(outputs(nb) for nb in NOTEBOOKS) + " ".join(p.read_text() for p in MEASURED.rglob("*.json"))
    text = MARKER.sub("", path.read_text())  # marked figures are checked by the test above
    untraced = [m[0] for m in FIGURE.finditer(text) if m[1] not in printed]
    assert untraced == [], f"{path.name} quotes figures no output or results file holds: mark them or print them"


def test_the_check_fails_when_a_results_file_changes(tmp_path):
    """A test of the test: move one marked number's source by a little, and the marker is reported."""
    texts = [prose(path) for path in NOTEBOOKS + DOCUMENTS]
    match = next(m for text in texts for m in MARKER.finditer(text))
    copy = tmp_path / "measured"
    shutil.copytree(MEASURED, copy)
    data = json.loads((copy / match["file"]).read_text())
    parents, _, last = match["path"].rpartition(".")
    holder = lookup(data, parents) if parents else data
    key = int(last) if isinstance(holder, list) else last
    assert marker_problems(match[0], copy) == []
    holder[key] = float(holder[key]) * 1.02 + 0.01
    (copy / match["file"]).write_text(json.dumps(data))
    assert len(marker_problems(match[0], copy)) == 1
    (copy / match["file"]).unlink()
    assert "no results file" in marker_problems(match[0], copy)[0]


def test_the_readme_seeds_block_is_what_the_tool_writes():
    spec = importlib.util.spec_from_file_location("seeds_table", ROOT / "tools" / "seeds_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    block = re.search(r"<!-- seeds-table -->\n(.*?)\n<!-- /seeds-table -->", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md lost its <!-- seeds-table --> block"
    results = json.loads((MEASURED / "seeds.json").read_text())
    assert block[1] == tool.readme_block(results), "run `python tools/seeds_table.py --apply`"
