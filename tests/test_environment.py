"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def names(requirements) -> set[str]:
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in requirements}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = names(project["dependencies"]) | names(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    installed_by_pip = [p for p in pip if not p.startswith("-")]  # skip -e . and index options
    assert names(conda) - {"python", "pip"} | names(installed_by_pip) == wanted
    assert any(p.startswith("-e") for p in pip), "environment.yml should install the course itself"
