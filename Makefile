# The README's commands. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KERAS_HOME ?= $(CURDIR)/.venv/keras_home

.PHONY: venv install browser demo test test-fast test-stress lint format golden bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: venv

# System packages the tests drive: Debian's Chromium (the report and dashboard are checked in a real
# headless browser through Playwright; its own browser download cannot reach its host here) and
# iproute2 (the two-host test makes network namespaces). Needs root (CI is); elsewhere it says so.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium iproute2; \
	else echo "make browser: not root; install chromium and iproute2 with apt to run the browser tests"; fi

# A short real search on Fashion-MNIST (offline files: AUTOML_DATA_DIR=../shared/datasets):
# the CNN space: its default configuration first (every search starts there), then TPE proposals.
demo: venv
	AUTOML_DATA_DIR=$${AUTOML_DATA_DIR:-$(CURDIR)/../shared/datasets} $(BIN)/automl search image \
	  --dataset fashion_mnist --space cnn --tuner tpe \
	  --max-trials 3 --epochs 2 --max-samples 6000 --seed 1 --run-dir runs/demo --overwrite

# The whole suite, slow end-to-end tests included, but the chaos test (marker `chaos`, 3.5 min):
# it runs in `make test-stress`, beside the CPU hogs, where its faults are hardest to survive.
test: venv browser
	$(BIN)/python -m pytest -q -m "not chaos"

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

# The timing-sensitive tests (marker `timing`: faults, two hosts, chaos, budget, progress) beside
# two busy-loop CPU hogs that tests/support/stress.sh starts and always kills: races a quiet
# machine hides show here. CI runs it after `make test`.
test-stress: venv browser
	tests/support/stress.sh $(BIN)/python -m pytest -q -m timing

lint: venv
	$(BIN)/ruff format --check automl_app tests bench
	$(BIN)/ruff check automl_app tests bench
	$(BIN)/lint-imports

# Refresh tests/cli/golden/help_*.txt on purpose after changing an option (review the diff).
golden: venv
	AUTOML_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/cli/test_cli.py -k golden

format: venv
	$(BIN)/ruff format automl_app tests bench
	$(BIN)/ruff check --fix automl_app tests bench

bench: venv
	$(BIN)/python bench/fashion_mnist_budget.py

clean:
	rm -rf $(VENV) runs .pytest_cache
