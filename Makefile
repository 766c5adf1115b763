# Parley — `make help` lists the targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install install-dev run test test-fast lint typecheck check bench messages prod-like

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

$(STAMP)-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(STAMP) $(STAMP)-dev

install: $(STAMP) ## Install what Parley needs to run
install-dev: $(STAMP)-dev ## Install what the tests and tools need

run: install ## Run web, worker and scheduler on the embedded default (or DATABASE_URL/REDIS_URL)
	$(BIN)/python manage.py run

test: install-dev ## Run the whole test suite (PostgreSQL + Redis when DATABASE_URL/REDIS_URL are set)
	./scripts/install-test-deps
	@# Two passes: the tests that start no browser and no processes on two workers (each with its own
	@# database and Redis), then the browser and process-stack tests one at a time. Exit code 5 (no test
	@# selected, e.g. PYTEST_ARGS naming a file of one kind) is not a failure.
	$(BIN)/python -m pytest -m "not browser and not stack" -n 2 $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -m "browser or stack" $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-fast: install-dev ## Everything but browser and process-stack tests, in parallel (pytest-xdist)
	$(BIN)/python -m pytest -m "not browser and not stack" -n 2 $(PYTEST_ARGS)

prod-like: install-dev ## Production's topology on loopback from deploy/: nginx, 2 web, 2 workers, beat (needs DATABASE_URL, REDIS_URL)
	./scripts/install-test-deps
	$(BIN)/python -m bench.topology $(PROD_LIKE_ARGS)

lint: install-dev ## ruff lint and format check, and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev ## mypy strict
	$(BIN)/mypy .

check: lint typecheck test ## Everything CI checks

bench: install-dev ## Run the benchmarks (needs PostgreSQL)
	$(BIN)/python -m bench.inbox

messages: install-dev ## Extract UI strings for translation
	$(BIN)/python manage.py makemessages -l ru -l uk -l fa --ignore=.venv --ignore=var
