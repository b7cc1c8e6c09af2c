# Two commands on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs, runs the toy AutoSimulate experiment (~1 min on 2 cores)
#   make test   creates .venv, installs with test extras, runs lint and the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate setup.py
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/autosimulate-train

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -m "not slow" --durations=30 tests

clean:
	rm -rf $(VENV) *.egg-info build
