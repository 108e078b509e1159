# Quick start: `make demo` runs the demo, `make test` runs every check.
# Both create .venv with the standard library's venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench compile pure clean

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

LINTED := $(wildcard src tests benchmarks examples tools hatch_build.py)

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(VENV)/.dev-stamp
	$(BIN)/mypy

# A compiled engine whose sources changed is rebuilt first (a pure one stays pure).
pytest: $(VENV)/.dev-stamp
	$(BIN)/python tools/compile_engine.py --refresh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The engine compiled with mypyc (docs/engine.md, "Compiled mode"); `make pure` undoes it.
compile: $(VENV)/.dev-stamp
	$(BIN)/python tools/compile_engine.py

# Without a venv there is nothing compiled to remove that python3 cannot.
pure:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY)) tools/compile_engine.py --clean

test: lint typecheck pytest

$(VENV)/.bench-stamp: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all,dev,bench]'
	touch $@

# Benchmarks run the compiled engine when this machine can build it.
bench: $(VENV)/.bench-stamp
	$(BIN)/python tools/compile_engine.py --if-possible
	$(BIN)/python benchmarks/reactive.py
	$(BIN)/python benchmarks/utilities.py
	$(BIN)/python benchmarks/store.py

clean: pure
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
