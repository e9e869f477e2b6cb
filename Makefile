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
# make bench-locust: users, spawn rate, run time (locust's -t), tags (grpc, http), extra locust options,
# and a hard cap in seconds on the locust run.
LOCUST_USERS ?= 8
LOCUST_SPAWN_RATE ?= 4
LOCUST_TIME ?= 30s
LOCUST_TAGS ?= grpc http
LOCUST_ARGS ?=
LOCUST_TIMEOUT ?= 300
LOCUST_OUT := benchmarks/results/locust
# make reliability: hypothesis examples per fuzzed input (make test runs 100).
FUZZ_EXAMPLES ?= 1000
# make reliability: atheris inputs and time limit per coverage-guided target (benchmarks/atheris_campaign.py).
ATHERIS_RUNS ?= 100000
ATHERIS_SECONDS ?= 60
# make soak: minutes of load, and its options (benchmarks/soak.py --help).
SOAK_MINUTES ?= 3
SOAK_ARGS ?=

.PHONY: help deps-system deps-chromium demo test lint bench bench-locust reliability soak proto mxnet clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

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

# $(call apt_prelude,<package>): shell lines for a recipe that choose root or sudo for apt-get (in
# $$sudo), or say that <package> cannot be installed here and end the recipe without failing: the
# tests that need it skip, saying why.
apt_prelude = if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "$@: WARNING: $(1) is missing and installing it needs root or sudo" \
		"(apt-get install $(1)); the tests that need it will be skipped"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "$@: WARNING: $(1) is missing and" \
		"there is no apt-get: install it with your package manager; the tests that need it will be skipped"; exit 0; fi

# The mosquitto binary (Debian puts it in /usr/sbin, outside a normal user's PATH) for the tests and
# benchmarks that start a Mosquitto of their own. Installed with apt-get as root or through sudo.
# Without systemd the package's service start is moot, and elsewhere it would start a second broker
# on 1883 or fail against the one already there: a temporary policy-rc.d (exit 101) stops it.
# When it cannot install, it says so and goes on: the tests that need Mosquitto skip, saying why.
deps-system: deps-chromium ## install mosquitto and chromium (apt-get) when missing; no-op when present
	@if command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; then exit 0; fi; \
	$(call apt_prelude,mosquitto); \
	policy=/usr/sbin/policy-rc.d; created=""; \
	if [ ! -e $$policy ]; then \
		echo "deps-system: writing a temporary $$policy (exit 101) so that the package starts no broker"; \
		printf '#!/bin/sh\nexit 101\n' | $$sudo tee $$policy >/dev/null && $$sudo chmod 755 $$policy && created=1; \
	fi; \
	echo "deps-system: mosquitto is missing; running: $${sudo:+$$sudo }apt-get update && $${sudo:+$$sudo }apt-get install -y mosquitto"; \
	status=0; \
	{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; } || status=$$?; \
	if [ -n "$$created" ]; then $$sudo rm -f $$policy; fi; \
	if [ $$status -ne 0 ]; then echo "deps-system: WARNING: apt-get failed ($$status); the tests that need mosquitto will be skipped"; \
	else echo "deps-system: installed $$(/usr/sbin/mosquitto -h 2>/dev/null | head -n 1)"; fi

# Debian's Chromium for tests/browser, which drive it with Playwright: never `playwright install`
# (it downloads browsers; the machines have no internet). EDGESIM_CHROMIUM names another binary.
deps-chromium: ## install the chromium browser (apt-get) for tests/browser when missing; no-op when present
	@if [ -n "$$EDGESIM_CHROMIUM" ] && [ -x "$$EDGESIM_CHROMIUM" ]; then exit 0; fi; \
	if command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium; then exit 0; fi; \
	$(call apt_prelude,chromium); \
	echo "deps-chromium: chromium is missing; running: $${sudo:+$$sudo }apt-get update && $${sudo:+$$sudo }apt-get install -y chromium"; \
	status=0; \
	{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || status=$$?; \
	if [ $$status -ne 0 ]; then echo "deps-chromium: WARNING: apt-get failed ($$status); the browser tests will be skipped"; \
	else echo "deps-chromium: installed $$(/usr/bin/chromium --version 2>/dev/null | head -n 1)"; fi

demo: $(STAMP) ## set up, then the flagship demo on the fake profile: train, deploy to a fleet by IoT job, upgrade under load, web UI
	$(BIN)/edgesim --log-format text --log-level warning demo

test: $(STAMP) $(MXNET_STAMP) deps-system ## set up (mosquitto and chromium too), then run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check system simulators scenarios tests benchmarks
	$(BIN)/mypy

# Each benchmark rewrites its own section of BENCHMARKS.md; the summary (benchmarks/report.py) runs
# last, even when the locust run failed, and make then fails with the locust run's status.
bench: $(STAMP) $(MXNET_STAMP) deps-system ## run every benchmark (~8 min) and rewrite BENCHMARKS.md and benchmarks/results/
	$(BIN)/python -m benchmarks.agent_overhead --write-markdown BENCHMARKS.md
	$(BIN)/python -m benchmarks.concurrency_sweep --write-markdown BENCHMARKS.md
	$(BIN)/python -m benchmarks.swap_under_load --write-markdown BENCHMARKS.md
	$(BIN)/python -m benchmarks.broker_compare --write-markdown BENCHMARKS.md
	$(BIN)/python -m benchmarks.fleet_rollout --write-markdown BENCHMARKS.md
	@status=0; $(BIN)/python -m benchmarks.locust_bench --write-markdown BENCHMARKS.md || status=$$?; \
	$(BIN)/python -m benchmarks.report --write-markdown BENCHMARKS.md; exit $$status

# The target (an agent process and a device web UI over it, benchmarks/locust_target.py) is stopped
# on any exit (trap); each stage is bounded: the start-up wait, locust by -t and `timeout`, and the
# target by its own --seconds.
bench-locust: $(STAMP) ## load-test gRPC Predict and POST /api/predict with locust, headless (LOCUST_USERS, LOCUST_TIME, LOCUST_TAGS)
	@set -euo pipefail; dir=$$(mktemp -d); \
	$(BIN)/python -m benchmarks.locust_target --out "$$dir" --seconds $$(( $(LOCUST_TIMEOUT) + 240 )) >"$$dir/target.log" 2>&1 & \
	target=$$!; \
	trap 'kill -TERM $$target 2>/dev/null || true; wait $$target 2>/dev/null || true; rm -rf "$$dir"' EXIT; \
	trap 'exit 130' INT TERM; \
	for _ in $$(seq 360); do \
		[ -s "$$dir/target.json" ] && break; \
		kill -0 $$target 2>/dev/null || { tail -n 30 "$$dir/target.log"; echo "bench-locust: the target died"; exit 1; }; \
		sleep 0.5; \
	done; \
	[ -s "$$dir/target.json" ] || { tail -n 30 "$$dir/target.log"; echo "bench-locust: no target after 180 s"; exit 1; }; \
	grep -E '^(agent|model|host) =' "$$dir/locust.conf" | sed 's/^/bench-locust: /'; \
	status=0; \
	timeout --foreground --signal=INT --kill-after=30 $(LOCUST_TIMEOUT) $(BIN)/locust -f benchmarks/locustfile.py \
		--config "$$dir/locust.conf" --headless --only-summary -u $(LOCUST_USERS) -r $(LOCUST_SPAWN_RATE) \
		-t $(LOCUST_TIME) --tags $(LOCUST_TAGS) --csv $(LOCUST_OUT) --html $(LOCUST_OUT).html $(LOCUST_ARGS) \
		|| status=$$?; \
	echo; echo "bench-locust: $(LOCUST_USERS) users, $(LOCUST_TIME), tags $(LOCUST_TAGS) ($(LOCUST_OUT)_stats.csv, $(LOCUST_OUT).html)"; \
	$(BIN)/python -m benchmarks.locust_summary $(LOCUST_OUT)_stats.csv; \
	exit $$status

# Every kill point (make test runs a sample), fuzzing at full size, then RELIABILITY.md from the results.
reliability: $(STAMP) deps-system ## SIGKILL at every kill point and restart, fuzz every input (hypothesis, atheris), count authorization (~15 min); rewrite RELIABILITY.md
	EDGESIM_KILL_MATRIX=all EDGESIM_KILL_RESULTS=benchmarks/results/kill_points.json \
		EDGESIM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) EDGESIM_FUZZ_RESULTS=benchmarks/results/fuzz.json \
		EDGESIM_AUTH_RESULTS=benchmarks/results/authorization.json \
		$(BIN)/python -m pytest -q -p no:cacheprovider -W ignore::UserWarning tests/reliability
	$(BIN)/python -m benchmarks.atheris_campaign --runs $(ATHERIS_RUNS) --seconds $(ATHERIS_SECONDS) \
		--results benchmarks/results/atheris.json
	$(BIN)/python -m benchmarks.reliability_report --write RELIABILITY.md

# Bounded: the load stops after SOAK_MINUTES, every wait has a timeout; RELIABILITY.md is rewritten
# even when a check failed, and make then fails with the soak's status.
soak: $(STAMP) deps-system ## Predict load + upgrades + broker restarts for SOAK_MINUTES (3); leak checks; rewrite RELIABILITY.md
	@status=0; $(BIN)/python -m benchmarks.soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS) || status=$$?; \
	$(BIN)/python -m benchmarks.reliability_report --write RELIABILITY.md; exit $$status

proto: $(STAMP) ## regenerate the gRPC stubs from system/proto/agent.proto
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. system/proto/agent.proto

clean: ## remove the virtual environments and caches
	rm -rf $(VENV) $(MXNET_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
