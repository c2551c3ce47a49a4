# Skylane — the two commands: `make run` and `make test` (plus `make bench`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 4200
HOST ?= 127.0.0.1
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.13, the Lambda runtime: on PATH, or through pyenv, or the system's
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do \
  $$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: help run test lint bench deps clean

help:
	@echo "make run    serve the gateway on http://$(HOST):$(PORT) (installs everything first)"
	@echo "make test   install what tests need and run the whole suite"
	@echo "make bench  run the benchmark (bench/)"

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON313)" ]; then echo "Python 3.13 not found: install it (pyenv install 3.13 / apt-get install python3.13)"; exit 1; fi
	@if [ ! -x $(PY) ]; then $(PYTHON313) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

deps: $(VENV)/.installed

run: deps
	$(VENV)/bin/skylane serve --host $(HOST) --port $(PORT)

lint: deps
	$(VENV)/bin/ruff check .

# the Node clients (OpenAI Node SDK, Vercel AI SDK) that tests/integration/test_clients_node.py drives
tests/clients/node_modules/.installed: tests/clients/package.json tests/clients/package-lock.json
	npm ci --no-audit --no-fund --prefix tests/clients
	@touch $@

test: deps lint tests/clients/node_modules/.installed
	$(PY) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) node_modules tests/clients/node_modules .aws-sam .local
