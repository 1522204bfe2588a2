# The README's two commands: `make demo` and `make test`. Both create .venv when it is missing
# (or when setup.py changed) and install the package into it with its test extra.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_out
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder
DEMO_ARGS ?=

.PHONY: demo test test-fast lint format clean venv

venv: $(STAMP)

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m chatpose_jax.demo --workdir $(DEMO_DIR) $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check chatpose_jax data_pipelines configs launch tests tools
	$(VENV)/bin/ruff format --check chatpose_jax data_pipelines configs launch tests tools
	$(PY) tools/import_cycles.py chatpose_jax data_pipelines

format: $(STAMP)
	$(VENV)/bin/ruff format chatpose_jax data_pipelines configs launch tests tools
	$(VENV)/bin/ruff check --fix chatpose_jax data_pipelines configs launch tests tools

test: lint
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

# While working: every test but those marked slow (multi-process runs, TPU compiles, trainings, end-to-end
# runs). On two idle cores with the compile cache of an earlier run (tests/conftest.py): 2.4 minutes (528
# tests), against 7.6-8.5 for `make test` (five runs of this code), which still runs them all (598 tests).
test-fast: $(STAMP)
	$(VENV)/bin/pytest tests $(PYTEST_ARGS) -m "not slow"

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_DIR)
