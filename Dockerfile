# The project image: the locked dependency set (uv.lock), no pip at container start-up.
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /opt/ops-warehouse
COPY pyproject.toml uv.lock README.md ./
COPY plugins plugins
RUN uv sync --frozen --no-dev
COPY dags dags
COPY dbt_project dbt_project
COPY expectations expectations
ENV PATH=/opt/ops-warehouse/.venv/bin:$PATH \
    OPS_HOME=/data
VOLUME /data
