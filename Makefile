# Ops Warehouse: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: install sysdeps demo demo-fresh up bi bi-stop spark-up spark-down spark-status report test test-deploy lint docs bench bench-ingest bench-bi clean

# Debian packages the reports need: CJK fonts for charts and PDFs, Chromium and poppler for
# the rendering tests. Installed only where missing (and only where apt-get can run as root).
SYSTEM_PACKAGES := fonts-noto-cjk chromium poppler-utils

# The Python that `make lint` runs ruff on; SQLFluff lints dbt_project/ (.sqlfluff, .sqlfluffignore).
PYTHON_PATHS := src demo plugins dags tests bench bi dbt_project/lint

install: sysdeps ## install uv (if missing) and the locked dependencies into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet --compile-bytecode

sysdeps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "missing system packages (install them with your package manager): $$missing"; fi; \
	fi

# The demo world is the package ops_demo (demo/), installed by `make install` beside the product.
demo: install ## the whole pipeline on the demo world, through Airflow
	@$(RUN) ops-demo

demo-fresh: install ## same, after deleting the demo world and the warehouse
	@$(RUN) ops-demo --fresh

up: install ## Airflow with these DAGs, plus the demo APIs, on 127.0.0.1 only (OPS_AIRFLOW_HOST): http://localhost:8080
	@$(RUN) ops-demo up

bi: install ## Superset on the published warehouse, with the Ops overview dashboard: http://localhost:8088 (OPS_SUPERSET_PORT)
	@$(RUN) python -m bi.server start

bi-stop: ## stop the Superset `make bi` started
	@$(RUN) python -m bi.server stop

# The local Spark standalone cluster (src/ops_warehouse/warehouse/spark_cluster.py): state, logs
# and pid files under $OPS_SPARK_HOME_DIR (default var/spark).
spark-up: install ## a local Spark cluster: master, OPS_SPARK_WORKERS workers, Thrift server on 127.0.0.1:10000 (OPS_SPARK_THRIFT_PORT)
	@$(RUN) python -m ops_warehouse.warehouse.spark_cluster up

spark-down: ## stop every process of the cluster `make spark-up` started, executors included
	@$(RUN) python -m ops_warehouse.warehouse.spark_cluster down

spark-status: ## which of the cluster's processes run, their memory, the master's workers
	@$(RUN) python -m ops_warehouse.warehouse.spark_cluster status

report: install ## render the latest weekly report from the demo's published warehouse and print its path
	@$(RUN) ops report weekly

test: install ## unit, dbt, DAG integrity, quality, reports, BI access, benchmark (all but test-deploy's)
	@$(RUN) pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 -m "not deploy"

# The pipeline on the other deployments, the local Spark cluster (Java 17, 1.5-3.5 GiB of JVMs)
# and the Celery stack on PostgreSQL and Redis, and the tests that serve a stack: the demo end to
# end through Airflow's scheduler, Superset. CI (.ci/run) runs them after `make test`.
test-deploy: install ## Spark cluster, Celery stack, the demo through Airflow, Superset (about 12-15 minutes)
	@$(RUN) pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=10 -m deploy

docs: install ## dbt docs for every model and column, as one static HTML page
	@$(RUN) ops docs

lint: install ## ruff check and ruff format --check on the Python, SQLFluff on dbt_project/ (.sqlfluff)
	@$(RUN) ruff check $(PYTHON_PATHS)
	@$(RUN) ruff format --check $(PYTHON_PATHS)
	@$(RUN) sqlfluff lint dbt_project

bench: install ## the scale benchmark: whole pipeline + one incremental day, floor and overhead ratios (SCALE=1,10,50)
	@$(RUN) python bench/bench.py $(if $(SCALE),--scale $(SCALE),)

bench-ingest: install ## initial load at scale 1 and one incremental day (numbers for the README)
	@$(RUN) python bench/bench_ingest.py $(if $(SCALE),--scale $(SCALE),)

bench-bi: install ## Superset on a copy of a built warehouse (HOME_DIR, default var): dashboard load, publish → first fresh answer
	@$(RUN) python -m bench.bench_bi $(if $(HOME_DIR),--home $(HOME_DIR),) $(if $(LABEL),--label $(LABEL),)

clean: ## delete generated data (demo world, warehouse, Airflow metadata) under var/
	rm -rf var/
