"""Execute notebooks top to bottom on fresh kernels and save them with clean metadata.

Used by `make notebooks` (full mode, the outputs learners read). Each notebook runs alone, in its
own directory, and its wall time is printed so the "<= 5 minutes" promise can be checked.
Usage: python tools/run_notebooks.py [--quick] NOTEBOOK...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

KEEP_CELL_METADATA = {"tags", "jupyter", "collapsed", "scrolled"}


def clean(nb: nbformat.NotebookNode) -> None:
    """Keep only what a reader needs: a generic kernel, no timings, no widget state, progress bars at their final
    state."""
    # one stream per cell; text before each \r (a redrawn tqdm bar) dropped
    CoalesceStreamsPreprocessor().preprocess(nb, {})
    nb.metadata = nbformat.from_dict({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA})
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4


def run(path: Path, quick: bool) -> float:
    nb = nbformat.read(path, as_version=4)
    env_quick = os.environ.pop("MOBILEVLM_MINI_QUICK", None)
    if quick:
        os.environ["MOBILEVLM_MINI_QUICK"] = "1"
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.pop("MOBILEVLM_MINI_QUICK", None)
        if env_quick is not None:
            os.environ["MOBILEVLM_MINI_QUICK"] = env_quick
    seconds = time.perf_counter() - start
    clean(nb)
    nbformat.write(nb, path)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--quick", action="store_true", help="run with MOBILEVLM_MINI_QUICK=1")
    args = parser.parse_args()
    for path in args.notebooks:
        seconds = run(path, args.quick)
        print(f"{seconds:7.1f} s  {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
