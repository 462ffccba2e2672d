"""Write a small thumbnail of one figure from each lesson into assets/thumbnails/ (for the README's lesson table).

    .venv/bin/python tools/thumbnails.py            # every lesson in lessons/
    .venv/bin/python tools/thumbnails.py 04 07      # only these lessons

The figure is the notebook's first saved PNG output unless FIGURE names another (0-based index among
the lesson's figures). Run it after `make notebooks`, so the thumbnails show the committed outputs.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import nbformat
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 240  # pixels
FIGURE = {"00": 0, "02": 1, "05": 1, "07": 1, "11": 6, "12": 1}  # lesson -> which of its figures reads best small


def figures(path: Path) -> list[bytes]:
    """Every PNG output of a notebook, in order."""
    notebook = nbformat.read(path, as_version=4)
    return [
        base64.b64decode(output["data"]["image/png"])
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]


def main(lessons: list[str]) -> int:
    out = ROOT / "assets" / "thumbnails"
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
        number = path.name[:2]
        if lessons and number not in lessons:
            continue
        pngs = figures(path)
        if not pngs:
            print(f"{path.name}: no figure, no thumbnail")
            continue
        image = Image.open(io.BytesIO(pngs[min(FIGURE.get(number, 0), len(pngs) - 1)])).convert("RGB")
        image.thumbnail((WIDTH, WIDTH * 10))
        image.save(out / f"{number}.png", optimize=True)
        print(f"{path.name}: assets/thumbnails/{number}.png ({image.width}x{image.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
