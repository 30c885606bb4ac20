# PixSim: `make run` starts the whole system locally; `make test` runs the test suite.
# Every target installs what it needs first (uv, then the locked workspace).
SHELL := /bin/bash
UV := python3 -m uv

.PHONY: help install run test bench chaos lint schemas k8s docs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## install uv (if missing) and the locked workspace into .venv
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --all-packages --frozen --quiet

run: install ## start NATS, MongoDB (nx-27017), the sim fake and the four services; gateway on :8000
	@$(UV) run --frozen pixsim-dev

test: install ## run the tests against real local servers (or NATS_URL / MONGO_URL)
	@$(UV) run --frozen pytest

bench: install ## benchmark scenarios, each against a baseline in one run (bench/README.md; flags: BENCH_ARGS=...)
	@$(UV) run --frozen python bench/run.py $(BENCH_ARGS)

chaos: install ## every service a real process, under load, while each is killed and NATS/MongoDB/the provider go away (CHAOS_ARGS=...)
	@$(UV) run --frozen python -m chaos $(CHAOS_ARGS)

lint: install ## ruff check, and ruff format --check (`uv run ruff format <path>` formats)
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .

schemas: install ## print the JSON Schema of every event
	@$(UV) run --frozen python -m pixsim_contracts

k8s: install ## render every kustomize overlay, validate it offline, checkov + hadolint (deploy/check.py)
	@$(UV) run --frozen python deploy/check.py

docs: install ## regenerate docs/asyncapi.yaml, docs/schemas/*.json and the README's provider table
	@$(UV) run --frozen python docs/generate.py
