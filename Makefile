# Ops Warehouse: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: install demo demo-fresh up test test-fast lint docs bench-ingest clean

install: ## install uv (if missing) and the locked dependencies into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

demo: install ## the whole pipeline on the demo world, through Airflow
	@$(RUN) ops demo

demo-fresh: install ## same, after deleting the demo world and the warehouse
	@$(RUN) ops demo --fresh

up: install ## Airflow (standalone) with these DAGs, plus the demo APIs: http://localhost:8080
	@$(RUN) ops up

test: install ## every test: unit, dbt, DAG integrity, end to end
	@$(RUN) pytest -q

test-fast: install
	@$(RUN) pytest -q -m "not e2e"

docs: install ## dbt docs for every model and column, as one static HTML page
	@$(RUN) ops docs

lint: install
	@$(RUN) ruff check plugins dags tests

bench-ingest: install ## initial load at scale 1 and one incremental day (numbers for the README)
	@$(RUN) python bench/bench_ingest.py $(if $(SCALE),--scale $(SCALE),)

clean: ## delete generated data (demo world, warehouse, Airflow metadata) under var/
	rm -rf var/
