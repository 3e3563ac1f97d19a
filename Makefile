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

# The sandbox for the agent and checks (activities/sandbox.py) needs bubblewrap: installed here
# when missing if we are root with apt-get, otherwise a NOTICE says what to do.
$(STAMPS)/bwrap:
	@mkdir -p $(STAMPS)
	@if command -v bwrap >/dev/null 2>&1; then \
		echo "bubblewrap: $$(bwrap --version)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	else \
		echo "NOTICE: bubblewrap (bwrap) is not installed and cannot be installed here (needs root"; \
		echo "NOTICE: and apt-get). Install it (apt-get install bubblewrap, dnf install bubblewrap)"; \
		echo "NOTICE: or the sandbox tests skip and the worker needs JANGAR_SANDBOX=off."; \
	fi
	@if command -v bwrap >/dev/null 2>&1; then touch $@; fi

setup: $(STAMPS)/py $(STAMPS)/npm $(STAMPS)/bwrap

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
