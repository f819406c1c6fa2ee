# Two entry points for a fresh machine: `make run` and `make test`.
# Each creates the virtual environment (.venv) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run smoke adaptive test test-quick dryrun lint profile clean

$(BIN)/diffsweep: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch and torchvision first and pinned: these wheels are the ones served locally (CPU machines run its CUDA build on the CPU)
	$(BIN)/pip install "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -e ".[test]"
	touch $@

# Local runs never talk to SLURM: with SLURM_CONF=/dev/null the SLURM executor plugin's import
# (every snakemake start, where it is installed) does not wait ~9 s for a controller that does not
# answer (docs/cluster.md).
LOCAL := SLURM_CONF=/dev/null

run: $(BIN)/diffsweep  ## the embedded default grid (config/config.yaml)
	$(LOCAL) $(BIN)/snakemake --cores $(CORES) --profile profiles/default

smoke: $(BIN)/diffsweep
	$(LOCAL) $(BIN)/snakemake --cores $(CORES) --profile profiles/default --configfile config/smoke.yaml

adaptive: $(BIN)/diffsweep  ## an adaptive sweep over the default grid's 2-D oracle presets (config/adaptive.yaml, docs/search.md)
	$(LOCAL) $(BIN)/snakemake --cores $(CORES) --profile profiles/default --configfile config/adaptive.yaml

test: $(BIN)/diffsweep  ## the whole test suite (what CI runs), with the 15 slowest tests
	$(BIN)/python -m pytest -q --durations=15

test-quick: $(BIN)/diffsweep  ## the inner loop: no Snakemake runs, no end-to-end runs (under 2 minutes)
	$(BIN)/python -m pytest -q --durations=15 -m "not workflow and not slow and not cluster"

dryrun: $(BIN)/diffsweep
	$(LOCAL) $(BIN)/snakemake -n --profile profiles/default

lint: $(BIN)/diffsweep  ## snakemake's linter on the Snakefile and rules (CI runs it before the tests)
	$(LOCAL) $(BIN)/snakemake --lint

PROFILE ?= slurm
profile: $(BIN)/diffsweep  ## once per user: link profiles/$(PROFILE) where `snakemake --profile $(PROFILE)` finds it
	$(BIN)/diffsweep profile install $(PROFILE)

clean:
	rm -rf results logs benchmarks .snakemake report.html
