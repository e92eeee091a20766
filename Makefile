# Developer shortcuts. Everything here is also plain commands in README.md.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin

.PHONY: help venv install up down status logs test test-unit test-integration lint format typecheck bad-input chaos net-faults storm soak ci compose-up compose-down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)

venv: $(PY)  ## create the virtual environment

install: $(PY)  ## install lineguard with the dev extra (editable)
	$(PY) -m pip install -e '.[dev]'

up:  ## start the local Kafka + MongoDB stack
	$(BIN)/lineguard stack up

down:  ## stop the local stack
	$(BIN)/lineguard stack down

status:  ## show the local stack's state
	$(BIN)/lineguard stack status

logs:  ## last lines of the stack's logs
	$(BIN)/lineguard stack logs

test:  ## the README's test command: unit + integration tests (starts the stack if needed)
	$(BIN)/pytest tests

test-unit:  ## fast tests, no services
	$(BIN)/pytest tests/unit

test-integration:  ## tests against real Kafka and MongoDB
	$(BIN)/pytest tests/integration

lint:  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:  ## apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck:  ## mypy over the packages
	$(BIN)/mypy lineguard infra schemas streams workers vision parts quality mes chaos bench

bad-input:  ## 10,000 poison records through a live worker (bench/bad_input_campaign.py)
	$(PY) bench/bad_input_campaign.py --cases 10000

chaos:  ## fault run on a private stack: 20 worker kills, a broker kill, a 30 s MongoDB outage (both modes)
	$(PY) -m chaos run --mode at-least-once --frames 4200 --fps 10
	$(PY) -m chaos run --mode exactly-once --frames 4200 --fps 10

net-faults:  ## latency, bandwidth, resets, a 30 s partition, half-open: worker<->Kafka and worker<->MongoDB
	$(PY) -m chaos net-faults --mode exactly-once

storm:  ## rebalance storm: workers join and leave every 5-10 s for 10 minutes under load (both modes)
	$(PY) -m chaos.rebalance_storm --minutes 10 --workers 3 --exactly-once
	$(PY) -m chaos.rebalance_storm --minutes 10 --workers 3

soak:  ## publisher + worker for 120 minutes: slopes of RSS, fds, p50/p99 and lag per hour
	$(PY) bench/bench_soak.py --minutes 120

ci:  ## what CI runs, from a clean clone: venv, install, stack up, tests, stack down
	bash .ci/run

compose-up:  ## the whole system in Docker (Kafka, MongoDB, camera, worker)
	docker compose up -d --build

compose-down:  ## stop the Docker system
	docker compose down
