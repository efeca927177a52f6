# The two commands (README): `make run` sets everything up and runs the DAG on the embedded default;
# `make test` installs and runs the tests. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The embedded default runs fully offline: no hub look-ups for models or datasets.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: run test test-fast setup clean-outputs negative-control

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# torch first and by exact version: where a CPU wheel is on hand (or from the CPU index, see
# README) pip takes it; otherwise PyPI's default build. The rest comes from pyproject.toml.
$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# --forceall: `make run` always regenerates everything, even where data/, runs/ or models/ hold outputs
# (on a fresh clone a plain run does too: rule all needs runs/analyze/manifest.json, never committed);
# `snakemake --cores all` afterwards reruns only what changed.
run: setup
	. $(BIN)/activate && snakemake --cores all --forceall

# The embedded world's negative control (config/negative-control.yaml): the same DAG in its own
# working directory, so the main results stay; its results/ are copied to results/negative_control/.
NEGATIVE_DIR := runs/negative_control
negative-control: setup
	mkdir -p $(NEGATIVE_DIR) && cp params.yaml config/negative-control.yaml $(NEGATIVE_DIR)/
	. $(BIN)/activate && cd $(NEGATIVE_DIR) && snakemake -s $(CURDIR)/Snakefile --cores all --forceall \
		--configfile params.yaml negative-control.yaml
	rm -rf results/negative_control && mkdir -p results/negative_control && \
		cp -r $(NEGATIVE_DIR)/results/README.md $(NEGATIVE_DIR)/results/metrics.json $(NEGATIVE_DIR)/results/tables \
		$(NEGATIVE_DIR)/results/reports results/negative_control/

test: setup
	. $(BIN)/activate && pytest -m "not slow" -q
	. $(BIN)/activate && pytest -m slow -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-fast: setup
	. $(BIN)/activate && pytest -m "not slow" -q -x

clean-outputs:
	rm -rf data models runs logs benchmarks .snakemake
