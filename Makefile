# The two commands of the README: `make demo` and `make test`. Both install what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WANGGE_HOME ?= $(CURDIR)/.wangge

.PHONY: demo test lint deps system-deps bench clean

deps: system-deps $(STAMP)

system-deps:
	@PYTHON=$(PYTHON) scripts/ensure-system-deps

# Reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: deps
	WANGGE=$(BIN)/wangge scripts/load-demo
	$(BIN)/wangge serve

test: deps
	$(BIN)/pytest

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: deps
	$(BIN)/python -m bench

clean:
	-$(BIN)/wangge db stop
	rm -rf $(VENV) .wangge
