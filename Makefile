# Two commands matter: `make test` and `make run`. Each sets up a fresh machine first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps

.PHONY: test lint setup run bench codegen histories clean

$(STAMPS)/py: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(STAMPS)/py $(STAMPS)/npm

test: setup
	npx vitest run
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	npx tsc --noEmit -p convex
	npx tsc --noEmit -p tools/local-backend

codegen: $(STAMPS)/npm $(STAMPS)/py
	$(BIN)/python -m tools.contract
	npx convex codegen --system-udfs --typecheck disable

clean:
	rm -rf $(STAMPS) $(VENV) node_modules .jangar

# One real job end to end on the embedded local stack (Temporal dev server, local Convex
# backend, worker), against a sample repository it creates; prints the run's timeline.
run: setup
	$(BIN)/python -m tools.run_demo

# Regenerate the replay corpus under tests/workflows/histories/ from real runs (see tests/workflows/histories/README.md).
histories: setup
	$(BIN)/python -m pytest tests/integration --record-histories

bench: setup
	$(BIN)/python -m tools.bench
