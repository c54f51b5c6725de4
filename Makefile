# ReplyBase — the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint fmt eval bench widget services-check chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

## make run: embedded mode (SQLite, in-process cache, eager Celery) on 127.0.0.1:$(PORT)
run: $(VENV)/.runtime
	DJANGO_SETTINGS_MODULE=config.settings.local $(BIN)/python manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=config.settings.local $(BIN)/python manage.py seed_demo
	@echo "Serving on http://127.0.0.1:$(PORT)/  (demo page: /demo/, dashboard: /dashboard/, admin: /admin/)"
	DJANGO_SETTINGS_MODULE=config.settings.local $(BIN)/python manage.py runserver --noreload 127.0.0.1:$(PORT)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian chromium + chromium-driver for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

widget-deps:
	@if [ ! -d webchat/widget/node_modules ] && [ -f webchat/widget/package-lock.json ]; then \
	  npm --prefix webchat/widget ci --no-audit --no-fund --loglevel=error; fi

services-check: $(VENV)/.dev
	$(BIN)/python -m tests.services_check

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make test: lint + the whole suite against real PostgreSQL, Redis and headless Chromium
test: $(VENV)/.dev chromium widget-deps services-check lint
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

eval: $(VENV)/.dev
	$(BIN)/python -m eval.run --split all

bench: $(VENV)/.dev services-check
	$(BIN)/python -m bench.run

widget: widget-deps
	npm --prefix webchat/widget run build

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
