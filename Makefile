# mobilevlm-mini: `make lab` to learn, `make test` to check everything.
# The virtual environment lives in .venv; torch is installed first, pinned, so pip takes the
# CPU build instead of a multi-GB CUDA one. Override with `make setup TORCH=2.5.1` (or install your
# own torch into .venv first and pass TORCH=) -- see README, "GPU or Mac".

PYTHON    ?= python3
TORCH     ?= 2.13.0
VENV      ?= .venv
LAB_ARGS  ?=
NOTEBOOKS ?= lessons
WHEELHOUSE ?= wheelhouse

BIN   := $(VENV)/bin
# While testing, idle OpenMP threads sleep instead of spinning: a spinning kernel in one notebook can
# slow another process (or the next test) many times over on a 2-core laptop. Not for `lab` and
# `notebooks`: one kernel at a time trains a third faster with its threads spinning.
test-unit test-notebooks: export OMP_WAIT_POLICY ?= PASSIVE
STAMP := $(VENV)/.installed-torch$(TORCH)
TORCH_SPEC := $(if $(TORCH),torch==$(TORCH),)
# Offline classroom install: with wheels in $(WHEELHOUSE)/ (`make wheelhouse`), pip never touches the network.
PIP_SOURCE := $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE),)
# Jupyter refuses to start as root (containers, CI) unless told it is intended.
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab lint test test-unit test-notebooks notebooks warm wheelhouse clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 10) else "mobilevlm-mini needs Python >= 3.10, found %d.%d: set PYTHON=python3.11 (or newer)" % v[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(PIP_SOURCE),,$(BIN)/python -m pip install --quiet --upgrade pip)
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install --quiet $(PIP_SOURCE) "$(TORCH_SPEC)")
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name mobilevlm-mini --display-name "Python (mobilevlm-mini)" > /dev/null
	rm -f $(VENV)/.installed-*
	touch $@
	@echo "mobilevlm-mini is set up in $(VENV)"

lab: setup
	cd lessons && ../$(BIN)/jupyter lab $(AS_ROOT) $(LAB_ARGS)

# Style and likely bugs (ruff: pycodestyle, pyflakes, isort, bugbear; settings in pyproject.toml), before any test.
lint: setup
	$(BIN)/ruff check mobilevlm_mini tests tools

test: lint test-unit test-notebooks

test-unit: setup
	MOBILEVLM_MINI_QUICK=1 MPLBACKEND=Agg $(BIN)/python -m pytest tests/

test-notebooks: setup
	MOBILEVLM_MINI_QUICK=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(NOTEBOOKS)

# Build every cached piece the lessons read (data splits, encoders, the trained tiny VLM) once, before a class.
warm: setup
	$(BIN)/python -m mobilevlm_mini warm

# Re-run every notebook in full mode and save the outputs in place (what learners read on the web).
notebooks: setup
	$(BIN)/python tools/run_notebooks.py lessons/[0-9]*.ipynb lessons/solutions/*.ipynb

# Every wheel the course needs, for a USB stick or a classroom share (copy the folder next to the Makefile).
wheelhouse: setup
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) "$(TORCH_SPEC)" ".[dev]" setuptools wheel
	@echo "$(WHEELHOUSE)/ holds $$(ls $(WHEELHOUSE) | wc -l) wheels ($$(du -sh $(WHEELHOUSE) | cut -f1)); \`make setup\` now installs from it offline"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
