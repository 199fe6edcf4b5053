# One entry point for developers and CI. `make test` installs everything the suite needs
# (a virtualenv with the package and its test tools, Chromium for the browser tests, the
# npm Faktory client) and runs lint, type checks and the whole test suite.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test-deps lint typecheck check test run bench

install:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'

test-deps: install
	./scripts/test-deps

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck

test: test-deps check
	$(PY) -m pytest

run: install
	$(VENV)/bin/werk server
