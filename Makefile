# Kamen — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test bench soak lint format messages venv venv-dev clean

$(VENV)/.runtime: requirements.txt
	@scripts/check-python.sh "$(PYTHON)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

## run: migrate, load the demo data, serve on http://$(HOST):$(PORT) (+ workers in real mode)
run: $(VENV)/.runtime
	@VENV=$(VENV) scripts/run.sh

## test: the whole suite on PostgreSQL + Redis (127.0.0.1 by default)
test: $(VENV)/.dev
	@VENV=$(VENV) scripts/test.sh $(PYTEST_ARGS)

## bench: benchmarks on PostgreSQL; prints a table, writes bench-results.json
bench: $(VENV)/.dev
	@VENV=$(VENV) scripts/bench.sh

## soak: the real-mode stack for SOAK_MINUTES (20) of buyers with a fault every 150 s (issue 26)
soak: $(VENV)/.dev
	@VENV=$(VENV) DJANGO_SETTINGS_MODULE=kamen.settings.base $(VENV)/bin/python -m bench.soak --minutes $(or $(SOAK_MINUTES),20) $(SOAK_ARGS)

## lint: the apps' layers first (import-linter, .importlinter), then ruff
lint: $(VENV)/.dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## messages: extract and compile the translation catalogs (needs gettext at build time only)
messages: $(VENV)/.dev
	$(VENV)/bin/python manage.py makemessages -l en --ignore=.venv --ignore=staticfiles
	$(VENV)/bin/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
