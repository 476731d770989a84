#!/usr/bin/env bash
# First start of the PostgreSQL container (docker-entrypoint-initdb.d): one login role and
# one database per user of the server. Passwords come from the container's environment
# (docker-compose.yml → your .env), never from this file.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" \
  -v ops_password="$WAREHOUSE_DB_PASSWORD" \
  -v superset_password="$SUPERSET_DB_PASSWORD" <<'SQL'
-- Airflow's metadata database (and Celery's result backend)
create role airflow login password :'airflow_password';
create database airflow owner airflow;
-- The warehouse: the pipeline's user creates the published database on first publish and
-- the read-only bi_reader role (`ops bi-reader`), hence createdb and createrole.
create role ops login createdb createrole password :'ops_password';
create database ops_warehouse owner ops;
-- Superset's own metadata database (its users, charts and dashboards)
create role superset login password :'superset_password';
create database superset owner superset;
SQL
