# Two commands set up a fresh machine and use it:
#   make demo   - install into .venv (first time only), then run the main job on the generated default data
#   make test   - install into .venv (first time only), then run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEFAULT_DAGSTER_HOME := $(CURDIR)/storage/dagster_home
# An exported DAGSTER_HOME wins over the default: here, in .env and so in every recipe and dagster command.
DAGSTER_HOME_DIR := $(or $(DAGSTER_HOME),$(DEFAULT_DAGSTER_HOME))
GPUS := $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
POOL_LIMIT := $(if $(filter-out 0,$(GPUS)),$(GPUS),$(shell nproc 2>/dev/null || echo 1))
# On 2 shared cores one thread per process is many times faster for torch and OpenCV.
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup demo test lint dev home clean-storage

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,deploy]' --config-settings editable_mode=compat
	touch $@

setup: $(STAMP) home

# DAGSTER_HOME must be an absolute path, so .env is written here rather than committed. It gives the
# default as ${DAGSTER_HOME:-...}, which both `source .env` (the recipes below) and the dagster CLI (which
# loads .env from the working directory over the environment) expand to an exported value first; a plain
# DAGSTER_HOME=... line of an older .env is rewritten that way (in place: .env may hold keys). An exported home that has its own
# dagster.yaml keeps it.
home:
	@mkdir -p $(DAGSTER_HOME_DIR)
	@if [ "$(DAGSTER_HOME_DIR)" = "$(DEFAULT_DAGSTER_HOME)" ] || [ ! -f "$(DAGSTER_HOME_DIR)/dagster.yaml" ]; then \
		sed 's/@POOL_LIMIT@/$(POOL_LIMIT)/' deploy/local/dagster.yaml > "$(DAGSTER_HOME_DIR)/dagster.yaml"; \
	else \
		echo "DAGSTER_HOME=$(DAGSTER_HOME_DIR) keeps its own dagster.yaml (the project's: deploy/local/dagster.yaml)"; \
	fi
	@test -f .env || printf 'DAGSTER_HOME=$${DAGSTER_HOME:-%s}\n' '$(DEFAULT_DAGSTER_HOME)' > .env
	@if grep -qE '^DAGSTER_HOME=[^$$"'"'"']' .env; then \
		(umask 077; sed -E 's|^DAGSTER_HOME=([^$$"'"'"'].*)$$|DAGSTER_HOME=$${DAGSTER_HOME:-\1}|' .env > .env.tmp) \
		&& cat .env.tmp > .env && rm -f .env.tmp; \
	fi

demo: setup
	set -a; source .env; set +a; $(PY) -m pipelines.demo

test: setup
	set -a; source .env; set +a; $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

dev: setup
	set -a; source .env; set +a; $(VENV)/bin/dagster dev -w workspace.yaml

clean-storage:
	rm -rf storage
