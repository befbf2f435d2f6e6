# Developer and CI entry points. `make` (or `make help`) lists them.
# Works from a fresh clone: the venv and node_modules are created on first use and
# refreshed only when their requirement/lock files change (stamp files).

SHELL := bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.requirements.stamp
NODE_STAMP := node_modules/.package-lock.stamp
PORT ?= 7071
PYTEST_ARGS ?=
FUZZ_EXAMPLES ?= 200
RUN_ARGS ?=
# `make run` writes traces, metrics and logs here (OTLP JSON lines) for `make trace` and
# `make metrics`. The standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, ...) reach
# the dev host as they are set.
TELEMETRY_DIR ?= $(CURDIR)/.local/telemetry

.PHONY: help deps run test lint clean openapi infra-check rebuild redrive bench fuzz token trace metrics

help: ## list the targets
	@echo "Targets:"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	    awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): requirements.txt requirements-dev.txt requirements-infra.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
	@touch $@

# --ignore-scripts: nothing here needs install scripts. --loglevel=error: azurite
# 3.37 declares node >= 22 (EBADENGINE warnings) but runs on node 20, tested.
$(NODE_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

deps: $(PY_STAMP) $(NODE_STAMP) ## install Python and npm dependencies (when changed)

run: deps ## start Azurite, the Cosmos stand-in and the dev host (PORT=7071); Ctrl-C stops all
	TELEMETRY_DIR=$(TELEMETRY_DIR) $(PY) -m devtools.stack run --port $(PORT) $(RUN_ARGS)

trace: $(PY_STAMP) ## a request's spans as a tree, from `make run`: ID=<correlation or trace id> (default: the last request)
	@$(PY) -m devtools.traces --dir $(TELEMETRY_DIR) trace $(ID)

metrics: $(PY_STAMP) ## the current cqrs.* metrics of `make run` (counters, gauges, latency p50/p95)
	@$(PY) -m devtools.traces --dir $(TELEMETRY_DIR) metrics

test: deps ## run the tests; options via PYTEST_ARGS="-x -k cosmos"
	$(PY) -m pytest $(PYTEST_ARGS)

fuzz: deps ## schemathesis over every operation on its own stack (FUZZ_EXAMPLES=200 per operation)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

lint: $(PY_STAMP) ## ruff, the import contracts (import-linter) and mypy; config in pyproject.toml
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m mypy

clean: ## remove local state (.local: logs, SQLite files)
	rm -rf .local

openapi: $(PY_STAMP) ## regenerate infra/openapi.json (the OpenAPI 3.0 rendering API Management imports)
	$(PY) -m devtools.openapi --version 3.0 > infra/openapi.json

infra-check: $(PY_STAMP) ## offline checks of infra/ (Bicep parsers, checkov, drift against the code)
	$(PY) -m pytest tests/test_infra.py tests/test_infra_*.py tests/test_postprovision.py $(PYTEST_ARGS)

bench: deps ## measure (statements, latencies, Cosmos requests per event) beside devtools/bench_baseline.json
	$(PY) -m devtools.bench $(BENCH_ARGS)

ROLES ?= Orders.Admin
SUB ?= dev
token: $(PY_STAMP) ## print an access token for the local stack: make -s token ROLES="Orders.Admin" SUB=ops
	@$(PY) -m devtools.dev_issuer token --roles "$(ROLES)" --sub "$(SUB)"

redrive: $(PY_STAMP) ## re-apply a projection's dead letters: PROJECTION=order-detail|...|all (SETTINGS=.local/settings.json)
	$(PY) -m sync.redrive --projection $(PROJECTION) $(if $(SETTINGS),--settings $(SETTINGS))

rebuild: $(PY_STAMP) ## rebuild a projection from the outbox: PROJECTION=order-detail|...|all (SETTINGS=.local/settings.json)
	$(PY) -m sync.rebuild --projection $(PROJECTION) $(if $(SETTINGS),--settings $(SETTINGS))
