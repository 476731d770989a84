# The project image for every service of docker-compose.yml (Airflow components, Celery
# workers, the Superset provisioning): the locked dependency set (uv.lock,
# `uv sync --frozen`) is installed at build time; nothing is pip-installed when a container
# starts. Two targets: `product` (the default, last stage) holds the product only; `demo`
# adds the demo world (demo/, package ops_demo) for the demo-sources service.
FROM python:3.11-slim-bookworm AS product

# uv itself, pinned (copied from its official image rather than installed with pip)
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/

# System packages the reports need (the same list as the Makefile's SYSTEM_PACKAGES).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      fonts-noto-cjk chromium poppler-utils \
 && rm -rf /var/lib/apt/lists/*

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/ops-warehouse/.venv
WORKDIR /opt/ops-warehouse

# Dependencies first (a layer that changes only with the lock), then the project.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src src
RUN uv sync --frozen --no-dev
COPY plugins plugins
COPY dags dags
COPY dbt_project dbt_project
COPY expectations expectations
COPY deploy deploy
# Spark, for the compose Spark services: pyspark (Spark's scripts and jars) in an environment
# of its own, as `make spark-up` installs it (deploy/spark/requirements.txt, with hashes)
RUN uv venv --quiet --python /usr/local/bin/python3 /opt/spark-env \
 && uv pip sync --quiet --python /opt/spark-env/bin/python deploy/spark/requirements.txt

# The same user id as the official Airflow image; group 0 so that an arbitrary uid works.
RUN useradd --uid 50000 --gid 0 --no-create-home --home-dir /opt/ops-warehouse ops \
 && mkdir -p /data && chown 50000:0 /data && chmod g+rwx /data
USER 50000
ENV SPARK_HOME=/opt/spark-env/lib/python3.11/site-packages/pyspark
ENV PATH=/opt/ops-warehouse/.venv/bin:$SPARK_HOME/bin:$PATH \
    PYTHONPATH=/opt/ops-warehouse/src \
    OPS_HOME=/data \
    AIRFLOW_HOME=/data/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/ops-warehouse/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ops-warehouse/plugins
VOLUME /data

# The demo world and its source APIs (`ops-demo`, `python -m ops_demo.server`): the product
# image plus the workspace member demo/ from the lock's `demo` dependency group.
FROM product AS demo
USER root
COPY demo demo
RUN uv sync --frozen --no-dev --group demo
USER 50000
ENV PYTHONPATH=/opt/ops-warehouse/src:/opt/ops-warehouse/demo

# Superset, the compose stack's BI tool: the environment `make bi` installs
# (bi/superset/requirements.txt, compiled with hashes; Superset pins SQLAlchemy < 2, so it
# cannot share the product's), bi/superset_config.py, and of the product only the settings
# and readers it imports (src/).
FROM python:3.11-slim-bookworm AS superset
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /opt/ops-warehouse
COPY bi/superset/requirements.txt bi/superset/requirements.txt
RUN uv venv --python /usr/local/bin/python3.11 /opt/superset \
 && uv pip sync --python /opt/superset/bin/python bi/superset/requirements.txt
COPY src src
COPY bi bi
RUN useradd --uid 50000 --gid 0 --no-create-home --home-dir /opt/ops-warehouse superset
USER 50000
ENV PATH=/opt/superset/bin:$PATH \
    SUPERSET_CONFIG_PATH=/opt/ops-warehouse/bi/superset_config.py \
    SUPERSET_HOME=/tmp/superset \
    FLASK_APP=superset \
    OPS_HOME=/tmp/ops

# The default target: the product alone, without the demo world.
FROM product
