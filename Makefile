# Set-up and everyday commands. Everything runs inside .venv/, which `make venv` creates with a
# Python >= 3.12 found by .ci/find-python (override with `make venv PYTHON=/path/to/python3.12`).

SHELL := bash
.DEFAULT_GOAL := help

VENV        := .venv
VENV_PY     := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS  ?=

.PHONY: help venv demo test test-fast lint compat bench bench-quick clean

help:
	@echo "make venv       create .venv (Python >= 3.12) and install -e .[test]"
	@echo "make demo       run the end-to-end example (python -m icechunk.demo)"
	@echo "make test       run the whole test suite (extra args: PYTEST_ARGS='...')"
	@echo "make test-fast  skip the slow suites (-m 'not slow')"
	@echo "make lint       ruff, the layers contract and mypy"
	@echo "make compat     regenerate docs/compatibility.md (official API vs ours)"
	@echo "make bench      benchmarks vs the official package (extra args: BENCH_ARGS='...')"
	@echo "make bench-quick  the same with small sizes, one repeat (a smoke run)"
	@echo "make clean      remove .venv and caches"

venv: $(STAMP)

$(VENV_PY):
	@py="$$(PYTHON='$(PYTHON)' bash .ci/find-python)" || exit 1; \
	echo "creating $(VENV) with $$py ($$($$py -V 2>&1))"; \
	"$$py" -m venv $(VENV)

# Re-install only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(VENV_PY) -m icechunk.demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV_PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VENV_PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# ruff, the layers contract (tools/check_layers.py: who may import whom, no import cycles, no
# module over ~700 lines) and mypy (--strict where [tool.mypy] in pyproject.toml says).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV_PY) tools/check_layers.py
	$(VENV)/bin/mypy

# Compares the official package (interop virtualenv under .cache/) with src/; --prune deletes
# the entries of docs/compatibility_status.json for names that have landed since.
compat: $(STAMP)
	$(VENV_PY) tools/compat_report.py --prune

# Side by side with the official icechunk 2.3.0 (its own venv, .cache/bench-official/, built
# on first use) and plain zarr; prints the table, writes benchmarks/results.json.
bench: $(STAMP)
	$(VENV_PY) benchmarks/run.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(VENV_PY) benchmarks/run.py --quick --repeats 1 --json .cache/bench-quick.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis .cache
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -not -path './.git/*' -exec rm -rf {} +
