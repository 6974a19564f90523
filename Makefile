# aigw developer entry points. `make demo` and `make test` are the two commands the README leads with.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export AIGW_CACHE ?= $(HOME)/.cache/aigw

.PHONY: help venv deps tools demo test lint typecheck unit cluster-up cluster-down bench image clean

help:
	@echo "make demo    - set up and run the local end-to-end demo on embedded defaults"
	@echo "make test    - set up and run the whole test suite (lint, types, layers, tests)"
	@echo "make tools   - build the pinned control plane, helm and OTel Collector into \$$AIGW_CACHE"
	@echo "make bench   - run the benchmark harness (bench/)"

$(BIN)/python:
	@command -v uv >/dev/null || $(PYTHON) -m pip install --quiet uv
	uv venv --quiet --python $(PYTHON) $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# System packages the tests and demo need (Debian). Idempotent; apt-get update only when something is missing.
deps:
	@bash .ci/system-deps.sh

tools: deps
	@bash e2e/build-tools.sh

demo: venv
	$(BIN)/aigw demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: venv deps tools lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest -q -m "not k8s" $(PYTEST_ARGS)

cluster-up: venv tools
	@$(BIN)/python -m aigw_e2e.cluster up

cluster-down: venv
	@$(BIN)/python -m aigw_e2e.cluster down

bench: venv deps
	$(BIN)/python bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
