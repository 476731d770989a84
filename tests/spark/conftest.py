"""A local Spark standalone cluster for the tests: a master, two workers of 1 GiB and one
core each, and the Thrift server, in a temporary folder on free ports (never 7077 or 10000,
which a developer's own cluster may hold).

One cluster per pytest process: under ``pytest -n 2`` each xdist worker that runs a test
asking for ``spark_cluster`` starts its own (about 1.5 GiB of JVMs at rest, up to 3.5 GiB
while executors work). Skipped, saying why, only where no Java is installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from ops_warehouse.warehouse.spark_cluster import SparkCluster, free_port_block, start, stop

WORKERS = 2
WORKER_MEMORY = "1g"


def cluster_on_free_ports(folder, workers: int = WORKERS) -> SparkCluster:
    """A cluster description on free ports: master, its web UI, one web UI per worker, the
    Thrift server's UI, then the Thrift port."""
    base = free_port_block(workers + 4)
    return SparkCluster(
        folder=folder,
        master_port=base,
        webui_port=base + 1,
        thrift_port=base + workers + 3,
        workers=workers,
        worker_memory=WORKER_MEMORY,
    )


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory) -> Iterator[SparkCluster]:
    """A running cluster of two workers, stopped (every process) when the session ends."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java 17 or later: install a JDK (apt-get install openjdk-17-jdk)")
    cluster = cluster_on_free_ports(tmp_path_factory.mktemp("spark"))
    try:
        yield start(cluster)
    finally:
        stop(cluster)
