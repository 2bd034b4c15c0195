# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

LAYERS := unit property databases cli crash

.PHONY: install demo test check $(addprefix test-,$(LAYERS)) bench bench-quick
install: $(STAMP)

## demo: an example project whose models evolve over three versions, end to end on SQLite
demo: $(STAMP)
	$(PY) examples/demo/run_demo.py

## test: the whole suite (PostgreSQL/MariaDB tests skip with a notice when no server answers)
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q

## test-unit, test-property, test-databases, test-cli, test-crash: one layer of the suite (tests/<layer>) alone
$(addprefix test-,$(LAYERS)): test-%: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q tests/$*

## check: ruff and mypy (strict) on the package, as CI runs them
check: $(STAMP)
	$(VENV)/bin/ruff check schemashift
	$(VENV)/bin/mypy schemashift

## bench: the benchmark against Alembic (see bench/README.md); bench-quick is the CI smoke size
bench: $(STAMP)
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick
