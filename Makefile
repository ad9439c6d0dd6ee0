# polyloop — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTEST  := $(PY) -m pytest
# the dashboard's chart library (requirements/js), copied where the front serves it
VENDOR  := services/web/static/vendor/.stamp
# `make load` knobs (a bounded headless Locust run against the running stack): USERS, RATE,
# DURATION; unset, the defaults of scripts/load_gates.sh apply (stated there, and only there)
USERS    ?=
RATE     ?=
DURATION ?=

.PHONY: help venv vendor pypy-venv engine up down ps logs test test-unit lint fmt load bench lock clean \
	swarm-up swarm-down swarm-ps test-swarm screenshot

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {name[++n] = $$1; what[n] = $$2; \
		if (length($$1) > width) width = length($$1)} \
		END {for (i = 1; i <= n; i++) printf "  make %-" width "s   %s\n", name[i], what[i]}' $(MAKEFILE_LIST)

$(PY): requirements/dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/dev.txt
	@touch $(PY)

venv: $(PY) $(VENDOR) ## create .venv with the pinned test/load/lint dependencies (+ make vendor)

$(VENDOR): requirements/js/package.json requirements/js/package-lock.json scripts/vendor-js.sh
	bash scripts/vendor-js.sh

vendor: $(VENDOR) ## uPlot (requirements/js, npm ci on the host) into services/web/static/vendor/

pypy-venv: ## build/pypy-venv: Debian's pypy3 + requirements/pypy.txt (the PyPy tests, bench)
	bash scripts/pypy-venv.sh

engine: ## install + start a Docker engine and compose v2 (Debian, root, no init system)
	bash scripts/install-docker.sh

up: $(PY) $(VENDOR) ## build + start the stack (containers, or local processes without Docker), wait until healthy
	@bash scripts/stack.sh up

down: ## stop the stack
	@bash scripts/stack.sh down

ps: ## the stack's services and their state
	@bash scripts/stack.sh ps

logs: ## follow the services' logs
	@bash scripts/stack.sh logs

# the stack it brings up runs short experiments (the browser tests run ten of them);
# both suites run even when the first fails (the gevent one is a process of its own)
test: export WEB_EXPERIMENT_SECONDS ?= 6
test: export WEB_EXPERIMENT_BASELINE ?= 2
test: export POLYLOOP_HEALTH_INTERVAL ?= 3s
test: up ## the whole suite (unit, integration, browser) against the running stack it brings up
	$(PYTEST) --durations=15 tests; rc=$$?; $(PYTEST) -c tests/gevent/pytest.ini tests/gevent || rc=1; exit $$rc

test-unit: $(PY) $(VENDOR) ## unit tests only (no stack needed)
	$(PYTEST) tests/unit; rc=$$?; $(PYTEST) -c tests/gevent/pytest.ini tests/gevent || rc=1; exit $$rc

lint: $(PY) ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(PY) ## ruff: fix what it can and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

load: $(PY) ## headless Locust run with gates; HTML + CSV under reports/load (USERS, RATE, DURATION)
	@LOAD_USERS=$(USERS) LOAD_RATE=$(RATE) LOAD_TIME=$(DURATION) bash scripts/load_gates.sh

swarm-up: $(PY) $(VENDOR) ## the replicated stack on Docker Swarm (single-node swarm if none), wait, print the URL
	@bash scripts/swarm.sh up

swarm-down: ## remove the swarm stack; leave the swarm if swarm-up created it
	@bash scripts/swarm.sh down

swarm-ps: ## the swarm stack's services and tasks
	@bash scripts/swarm.sh ps

test-swarm: $(PY) $(VENDOR) ## deploy on swarm, run tests/swarm through the front, tear down
	@bash scripts/swarm-test.sh

bench: $(PY) ## side-by-side benchmarks; report under reports/bench/
	$(PY) -m bench

screenshot: $(PY) ## docs/img/dashboard.png: the running dashboard at 1440x900 during an experiment
	$(PY) -m devstack.screenshot

PIP_COMPILE_FLAGS := -q --strip-extras --no-header --allow-unsafe --no-emit-index-url --no-emit-find-links
PYPY_TOOLS := build/pypy-piptools

lock: $(PY) ## recompile the pinned requirements/*.txt from requirements/*.in (pip-tools)
	cd requirements && for f in runtime dev locust; do \
		$(abspath $(VENV))/bin/pip-compile $(PIP_COMPILE_FLAGS) -o $$f.txt $$f.in; done
	@# pypy.txt is for Debian's pypy3 (Python 3.9): pip-tools must run ON pypy3 to
	@# resolve with its markers and requires-python, so it gets a venv of its own
	[ -x $(PYPY_TOOLS)/bin/pip-compile ] || { pypy3 -m venv $(PYPY_TOOLS) \
		&& $(PYPY_TOOLS)/bin/pip install -q pip-tools==7.6.2; }
	cd requirements && ../$(PYPY_TOOLS)/bin/pip-compile $(PIP_COMPILE_FLAGS) -o pypy.txt pypy.in

clean: down ## stop the stack, remove build outputs, reports and caches (keeps .venv)
	rm -rf build reports .run .pytest_cache .ruff_cache .hypothesis services/web/static/vendor
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
