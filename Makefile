# The two set-up commands of the README: `make run` (main job on the default data) and
# `make test` (the test suite). Both install uv when it is missing, then let uv install the
# locked environment (uv.lock) into .venv on first use.
SHELL := /bin/bash
UV := $(shell command -v uv >/dev/null 2>&1 && echo uv || \
	(python3 -m pip install --quiet uv >&2 && echo python3 -m uv))
# uv compiles the environment's bytecode when it installs it (then 1-9 s a call to check it):
# where PYTHONDONTWRITEBYTECODE is set, as on our CI machines, Python would otherwise compile
# torch's sources again in every process (~10 s each, tests' subprocesses and workers included).
export UV_COMPILE_BYTECODE := 1
# Where the Twitter I dataset lives (override: make run DATA=/path/to/twitter1)
DATA ?= $(or $(VSENT_DATA),../shared/datasets/twitter1)
OUT ?= runs/quick

.PHONY: run test test-slow lint bench

run:  ## 5-fold cross-validation, quick CPU configuration (~5-10 min on 2 cores); resumable
	@test -d "$(DATA)" || { echo "make run: no Twitter I dataset at $(DATA); give its folder:" \
		"make run DATA=/path/to/twitter1 (or set VSENT_DATA)" >&2; exit 2; }
	$(UV) run --locked --all-extras vsent crossval --preset quick --data "$(DATA)" --out "$(OUT)" --resume

test:  ## the default test suite (slow tests excluded)
	$(UV) run --locked --all-extras pytest -q $(ARGS)

test-slow:  ## only the slow tests
	$(UV) run --locked --all-extras pytest -q -m slow $(ARGS)

lint:
	$(UV) run --locked --all-extras ruff check src tests bench

# Every benchmark runs (one failing, e.g. for a missing extra, does not skip the others), then
# the plot; the failures are listed at the end and make fails. They read the dataset at DATA
# (passed as $VSENT_DATA, their --data default).
bench:  ## benchmarks, each writing JSON into bench/results/; then the accuracy-against-cost plot
	@failed=""; \
	for b in bench/bench_*.py bench/plot_accuracy_cost.py; do \
		echo "make bench: $$b" >&2; \
		VSENT_DATA="$(DATA)" $(UV) run --locked --all-extras python $$b || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "make bench: failed:$$failed" >&2; exit 1; fi
