"""What docker-compose.yml's Spark Thrift server needs before it starts (the
spark-metastore-init service; each step a no-op once done):

1. the database of its Hive metastore, ``hive_metastore`` on the compose PostgreSQL, owned
   by the metastore's user (the metastore creates its own tables in it on first start,
   deploy/spark/hive-site.xml);
2. PostgreSQL's JDBC driver, which Spark does not bundle, in ``/data/spark/jars`` on the
   shared volume: the Thrift server puts it on its class path (``--driver-class-path``; a jar
   given with ``--jars`` or ``--packages`` reaches the user class loader only, where the
   metastore's connection pool does not find a JDBC driver). Downloaded once from Maven
   Central and checked against the SHA-256 pinned here.

Settings from the environment: ``HIVE_METASTORE_ADMIN_URL`` (a PostgreSQL URL of a role that
may create databases), ``HIVE_METASTORE_USER``, ``SPARK_JARS_DIR``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql

DATABASE = "hive_metastore"
JDBC_JAR = "postgresql-42.7.13.jar"
JDBC_URL = f"https://repo1.maven.org/maven2/org/postgresql/postgresql/42.7.13/{JDBC_JAR}"
JDBC_SHA256 = "6e0e4cc2d8cae902084f8a2b18728b073a6fd9d1f87c9d8bff8f298c18185b93"


def ensure_database(admin_url: str, owner: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as con:
        exists = con.execute("select 1 from pg_database where datname = %s", [DATABASE]).fetchone()
        if exists is None:
            con.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(owner)
                )
            )
            print(f"created database {DATABASE} (owner {owner})")


def ensure_jdbc_driver(folder: Path) -> Path:
    target = folder / JDBC_JAR
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == JDBC_SHA256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(JDBC_URL, timeout=60) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != JDBC_SHA256:
        sys.exit(f"{JDBC_URL} has SHA-256 {digest}, not the pinned {JDBC_SHA256}: not installed")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    print(f"installed {target}")
    return target


def main() -> None:
    ensure_database(os.environ["HIVE_METASTORE_ADMIN_URL"], os.environ["HIVE_METASTORE_USER"])
    ensure_jdbc_driver(Path(os.environ.get("SPARK_JARS_DIR", "/data/spark/jars")))


if __name__ == "__main__":
    main()
