# One entry point for users, developers and CI. Every target works on a fresh Debian or
# Ubuntu machine that has python3 (3.11 or newer), python3-venv and make:
#
#   make run    a virtualenv in .venv with Werk in it, then `werk server` on the embedded store
#   make test   the test tools, the services and programs the suite needs (scripts/test-deps),
#               then lint, type checks and the whole suite; services it started are stopped
#
# `make test` runs pytest with CI=true, so a test whose service or program is missing fails
# instead of skipping (tests/conftest.py `require`): nothing is silently left out.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# make test runs the suite in TEST_JOBS pytest-xdist processes (TEST_JOBS=0: in one process).
# Most tests wait on their servers rather than compute (a serial run keeps the load average
# of a 2-core machine under 1), so 2 processes about halve the time; --dist loadscope keeps
# each module's tests on one process (module-scoped servers).
TEST_JOBS ?= 2

.PHONY: venv install run test-deps lint typecheck check test

# The virtualenv with the package alone (what `make run` needs).
venv: $(VENV)/.werk-installed

$(VENV)/.werk-installed: pyproject.toml
	@./scripts/check-python "$(PYTHON)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

# The virtualenv with the package and the test tools (what developers and `make test` need).
install: venv
	$(PY) -m pip install -q -e '.[test]'

run: venv
	$(VENV)/bin/werk server

test-deps: install
	./scripts/test-deps

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck

# scripts/test-deps --stop runs whatever happened, so a service started here never outlives
# the run; the suite's own exit status is the target's.
test: install
	@./scripts/test-deps || { ./scripts/test-deps --stop; exit 1; }
	@status=0; \
	$(MAKE) --no-print-directory check || status=$$?; \
	if [ $$status = 0 ]; then CI=true $(PY) -m pytest -n $(TEST_JOBS) --dist loadscope $(PYTEST_ARGS) || status=$$?; fi; \
	./scripts/test-deps --stop; \
	exit $$status
