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

.PHONY: help lock venv tools lint validate pytest pytest-oldest test demo bench soak bench-totime model mutate build clean

help:
	@echo "make demo   - back up 8 Cumulus tables and restore them, on the embedded emulator"
	@echo "make test   - ruff, mypy, sam validate --lint, asl-validator, pytest"
	@echo "make bench  - throughput and memory benchmarks (not part of make test)"
	@echo "make soak   - 30 simulated nights on the local stack: restores, retention, storage, alarms (~4 min)"
	@echo "make bench-totime - a restore to a time applying 100k, 300k and 1M changes: time, peak memory a call"
	@echo "make model  - the model-based test at scale: 100,000 changes, 20 restore times (not part of make test)"
	@echo "make mutate - mutation testing of the modules that guard data (not part of make test)"
	@echo "make build  - sam build (needs python3.13 on PATH)"

# Every venv installs exactly requirements.lock (make lock writes it, and the layer's requirements from it).
UV_VERSION := 0.13.10
SAM_VERSION := 1.170.0
# venv_install(venv dir, python): a venv with uv, the locked packages, and this project (editable, no resolution).
define venv_install
	test -x $(1)/bin/python || $(2) -m venv $(1)
	$(1)/bin/python -m pip install -q uv==$(UV_VERSION) 2>&1 | grep -v "^WARNING: Location" || true
	VIRTUAL_ENV=$(1) $(1)/bin/uv pip sync -q --python $(1)/bin/python requirements.lock
	VIRTUAL_ENV=$(1) $(1)/bin/uv pip install -q --python $(1)/bin/python --no-deps -e . -e devkit
	$(1)/bin/python -c "import ddb_backup, devkit.cli, moto, pytest"
endef

$(BIN)/.installed: pyproject.toml devkit/pyproject.toml requirements.lock
	$(call venv_install,$(VENV),$(PYTHON))
	touch $@

.venv-sam/.installed:
	test -x .venv-sam/bin/python || $(SAM_PYTHON) -m venv .venv-sam
	.venv-sam/bin/python -m pip install -q uv==$(UV_VERSION) 2>&1 | grep -v "^WARNING: Location" || true
	VIRTUAL_ENV=.venv-sam .venv-sam/bin/uv pip install -q --python .venv-sam/bin/python aws-sam-cli==$(SAM_VERSION)
	test -x $(SAM)
	touch $@

$(ASLV): package.json
	npm install --no-audit --no-fund --silent
	touch $@

.venv311/.installed: pyproject.toml devkit/pyproject.toml requirements.lock
	$(call venv_install,.venv311,$(PYTHON_OLDEST))
	touch $@

venv: $(BIN)/.installed

# The one lock file, and the Lambda layer's requirements compiled from it (tests/unit/test_lock.py checks they agree).
lock: venv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -q -o requirements.lock --custom-compile-command "make lock"
	$(BIN)/uv pip compile layers/core/requirements.in -c requirements.lock --universal --python-version 3.13 -q --no-annotate -o layers/core/requirements.txt --custom-compile-command "make lock"
tools: venv .venv-sam/.installed $(ASLV)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for f in functions/*/app.py; do $(BIN)/mypy "$$f" || exit 1; done

validate: .venv-sam/.installed $(ASLV)
	$(SAM) validate --lint --region us-east-1
	$(SAM) validate --lint --region us-east-1 -t replica.yaml
	for f in statemachine/*.asl.json; do $(ASLV) --json-path "$$f" || exit 1; done

# Four workers on two cores: most tests wait (rate limits, DynamoDB's whole seconds, Step Functions), few compute.
pytest: venv
	$(BIN)/pytest -n 4 -q

# Lambda code runs on 3.13 (above); the CLI and the core it runs also on 3.11: every module of both is
# imported there (a 3.12-only name or syntax fails), then the tests of what the CLI runs: its own, the
# readers and writers, the diff, the selectors, and the e2e tests (the CLI on a moto server). Tests of
# what only Lambda or the 3.13 venv runs (template, ASL, handlers, state machines, mutation tool) are
# left to the leg above.
OLDEST_TESTS := tests/e2e tests/unit/cli tests/unit/format tests/unit/restore tests/unit/aws tests/unit/selection \
	tests/unit/test_compare.py tests/unit/test_names.py tests/unit/test_estimate.py tests/unit/test_estimate_sample.py \
	tests/unit/test_format.py tests/unit/test_format_roundtrip.py tests/unit/test_fuzz_readers.py \
	tests/unit/test_restore_sets.py tests/unit/test_tablescan.py tests/unit/test_cli_readme.py
IMPORT_ALL := import importlib, pkgutil, ddb_backup, ddb_backup_cli; \
	[importlib.import_module(m.name) for p in (ddb_backup, ddb_backup_cli) for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")]
pytest-oldest: .venv311/.installed
	.venv311/bin/python -c '$(IMPORT_ALL)'
	.venv311/bin/pytest -n 2 -q -p no:cacheprovider $(OLDEST_TESTS)

# CI's command: the checks and both legs at once (the 3.13 leg keeps about one of the two cores busy,
# most of its tests wait; the 3.11 leg takes the other). Each target's output is shown when it ends.
test:
	$(MAKE) --no-print-directory -j4 --output-sync=target lint validate pytest pytest-oldest

demo: venv
	$(BIN)/ddb-backup-dev demo

bench: venv
	$(BIN)/python -m bench
	$(BIN)/python -m bench.rate
	$(BIN)/python -m bench.throttle

# 30 nights on a simulated clock (tests/soak/, docs/soak.md); the suite runs a four-night case.
soak: venv
	nice -n 10 $(BIN)/python -m tests.soak

bench-totime: venv
	$(BIN)/python -m bench.totime

# tests/changes/test_model_scale.py is skipped unless MODEL_CHANGES is set (CI runs test_model.py, its small case).
MODEL_CHANGES ?= 100000
model: venv
	MODEL_CHANGES=$(MODEL_CHANGES) $(BIN)/pytest -q -s -p no:cacheprovider tests/changes/test_model_scale.py

# mutmut over the data-guarding modules, each with only its mapped tests (tools/mutate.py);
# equivalent mutants are listed with their reasons in tools/mutate_equivalents.toml.
mutate: venv
	nice -n 19 $(BIN)/python tools/mutate.py --jobs 2 --children 1 $(MODULES)

build: .venv-sam/.installed
	PYENV_VERSION=$${PYENV_VERSION:-3.11.7:3.13.0} $(SAM) build

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .mutate
