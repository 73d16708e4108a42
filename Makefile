# The two commands in README do all set-up on a fresh machine with Python 3:
#   make demo   - create .venv, install sessionkit, run the demo on a local folder store
#   make test   - create .venv, install sessionkit[dev], run the whole test suite
#   make test-training - create .venv-train with torch, transformers, Lightning and Keras
#                 (tests/training/requirements.txt), run the framework integration tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PKG_FILES := setup.cfg pyproject.toml

TRAIN_VENV ?= .venv-train

.PHONY: demo test test-training bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python $(PKG_FILES)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python $(PKG_FILES)
	$(BIN)/python -m pip install --quiet -e ".[dev,lab]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/sessionkit demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(TRAIN_VENV)/.installed: $(PKG_FILES) tests/training/requirements.txt
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TRAIN_VENV)/bin/python -m pip install --quiet -r tests/training/requirements.txt -e ".[dev]"
	touch $@

test-training: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m pytest tests/training $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(TRAIN_VENV) build *.egg-info .pytest_cache
