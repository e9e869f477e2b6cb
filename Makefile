# edgesim: `make help` lists the targets. Every target creates .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MXNET_VENV := .venv-mxnet
STAMP := $(VENV)/.installed
MXNET_STAMP := $(MXNET_VENV)/.installed
export EDGESIM_MXNET_PYTHON ?= $(abspath $(MXNET_VENV))/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
PYTEST_ARGS ?=

.PHONY: help demo test lint bench proto mxnet clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(MXNET_STAMP):
	$(PYTHON) -m venv $(MXNET_VENV)
	$(MXNET_VENV)/bin/pip install --quiet --upgrade pip
	$(MXNET_VENV)/bin/pip install --quiet 'mxnet==1.9.1' 'numpy==1.23.5'
	touch $(MXNET_STAMP)

mxnet: $(MXNET_STAMP) ## build .venv-mxnet (mxnet 1.9.1 + numpy 1.23.5) for the MXNet runtime worker

demo: $(STAMP) ## set up, then run the demo (data, training, packaging, agent, predictions) on the fake profile
	$(BIN)/edgesim --log-format text --log-level warning demo

test: $(STAMP) $(MXNET_STAMP) ## set up, then run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check system simulators scenarios tests benchmarks
	$(BIN)/mypy

bench: $(STAMP) $(MXNET_STAMP) ## run the benchmarks and rewrite BENCHMARKS.md
	$(BIN)/python -m benchmarks.agent_overhead --write-markdown BENCHMARKS.md

proto: $(STAMP) ## regenerate the gRPC stubs from system/proto/agent.proto
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. system/proto/agent.proto

clean: ## remove the virtual environments and caches
	rm -rf $(VENV) $(MXNET_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
