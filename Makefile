# The README's commands. Each target sets up what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.13: the project venv uses it when present (pyenv), else python3.
# (pyenv shims can exist for versions that are not active: each candidate must really run.)
find_python = $(shell for p in $(1); do if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1; then command -v $$p; break; fi; done)
PYTHON ?= $(call find_python,python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) python3.12 python3.11 python3)
# aws-sam-cli pins an older boto3, so it lives in a venv of its own.
SAM_PYTHON ?= $(call find_python,python3.11 $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3) python3.12 python3 python3.13)
# The CLI must keep working on the oldest Python we support.
PYTHON_OLDEST ?= $(call find_python,python3.11 $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3))
VENV := .venv
BIN := $(VENV)/bin
SAM := .venv-sam/bin/sam
ASLV := node_modules/.bin/asl-validator
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools lint validate pytest pytest-oldest test demo bench mutate build clean

help:
	@echo "make demo   - back up 8 Cumulus tables and restore them, on the embedded emulator"
	@echo "make test   - ruff, mypy, sam validate --lint, asl-validator, pytest"
	@echo "make bench  - throughput and memory benchmarks (not part of make test)"
	@echo "make mutate - mutation testing of the modules that guard data (not part of make test)"
	@echo "make build  - sam build (needs python3.13 on PATH)"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import ddb_backup, moto, pytest"
	touch $@

.venv-sam/.installed:
	test -x .venv-sam/bin/python || $(SAM_PYTHON) -m venv .venv-sam
	.venv-sam/bin/python -m pip install -q aws-sam-cli 2>&1 | grep -v "^WARNING: Location" || true
	test -x $(SAM)
	touch $@

$(ASLV): package.json
	npm install --no-audit --no-fund --silent
	touch $@

.venv311/.installed: pyproject.toml
	test -x .venv311/bin/python || $(PYTHON_OLDEST) -m venv .venv311
	.venv311/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	.venv311/bin/python -c "import ddb_backup, moto, pytest"
	touch $@

venv: $(BIN)/.installed
tools: venv .venv-sam/.installed $(ASLV)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for f in functions/*/app.py; do $(BIN)/mypy "$$f" || exit 1; done

validate: .venv-sam/.installed $(ASLV)
	$(SAM) validate --lint --region us-east-1
	for f in statemachine/*.asl.json; do $(ASLV) --json-path "$$f" || exit 1; done

pytest: venv
	$(BIN)/pytest -n 2 -q

# Lambda code runs on 3.13 (above); the CLI and its core also on 3.11.
pytest-oldest: .venv311/.installed
	.venv311/bin/pytest -q -p no:cacheprovider tests/unit tests/e2e

test: lint validate pytest pytest-oldest

demo: venv
	$(BIN)/ddb-backup demo

bench: venv
	$(BIN)/python -m bench
	$(BIN)/python -m bench.rate
	$(BIN)/python -m bench.throttle

# mutmut over the data-guarding modules, each with only its mapped tests (tools/mutate.py);
# equivalent mutants are listed with their reasons in tools/mutate_equivalents.toml.
mutate: venv
	nice -n 19 $(BIN)/python tools/mutate.py --jobs 2 --children 1 $(MODULES)

build: .venv-sam/.installed
	PYENV_VERSION=$${PYENV_VERSION:-3.11.7:3.13.0} $(SAM) build

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .mutate
