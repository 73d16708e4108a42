# The two commands in README do all set-up on a fresh machine with Python 3:
#   make demo   - create .venv, install sessionkit, run the demo on a local folder store
#   make test   - create .venv, install sessionkit[dev], run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PKG_FILES := setup.cfg pyproject.toml

.PHONY: demo test bench clean

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

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
