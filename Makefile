# Quick start: `make demo` runs the demo, `make test` runs every check.
# Both create .venv with the standard library's venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo is a web page: it needs the server extra (Starlette, uvicorn, pydantic).
$(VENV)/.demo-web-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.dev-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $@

# `make demo DEMO_ARGS="--port 0 --backend sqlite:///demo.db"` passes options on.
demo: $(VENV)/.demo-web-stamp
	$(BIN)/statekit demo $(DEMO_ARGS)

LINTED := $(wildcard src tests benchmarks examples)

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(VENV)/.dev-stamp
	$(BIN)/mypy

pytest: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

$(VENV)/.bench-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all,dev,bench]'
	touch $@

bench: $(VENV)/.bench-stamp
	$(BIN)/python benchmarks/reactive.py
	$(BIN)/python benchmarks/utilities.py
	$(BIN)/python benchmarks/store.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
