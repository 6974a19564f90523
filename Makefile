# aigw developer entry points. `make demo` and `make test` are the two commands the README leads with.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export AIGW_CACHE ?= $(HOME)/.cache/aigw

.PHONY: help venv deps tools demo test lint typecheck unit cluster-up cluster-down bench image chart-golden clean

help:
	@echo "make demo    - set up and run the local end-to-end demo on embedded defaults"
	@echo "make test    - set up and run the whole test suite (lint, types, layers, tests)"
	@echo "make tools   - build the pinned control plane, helm and OTel Collector into \$$AIGW_CACHE"
	@echo "make bench   - run the benchmark harness (bench/)"
	@echo "make image   - build the aigw container image (\$$IMAGE, default aigw:dev; needs a Docker engine)"

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
	$(BIN)/hadolint Dockerfile

test: venv deps tools lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest -q -m "not k8s" $(PYTEST_ARGS)

cluster-up: venv tools
	@$(BIN)/python -m aigw_e2e.cluster up --kubelet="$(KUBELET)"

cluster-down: venv
	@$(BIN)/python -m aigw_e2e.cluster down

bench: venv deps
	@bash bench/deps.sh
	$(BIN)/python bench

# The one image of the operator and the sidecar. Needs a running Docker engine, not just the CLI.
IMAGE ?= aigw:dev
image:
	@command -v docker >/dev/null || { echo "make image: the docker CLI is not installed" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine is reachable (docker info failed); build the image on a machine with one" >&2; exit 1; }
	docker build -t $(IMAGE) .

# Regenerate the chart's golden files (tests/chart/golden/) after a deliberate template change.
chart-golden: venv
	AIGW_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/chart -m "not k8s"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
