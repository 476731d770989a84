"""The libraries the executor imports before it forks its workers (ops_warehouse.preload)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from ops_warehouse import preload
from ops_warehouse.airflow.environment import airflow_env
from tests.conftest import make_settings

PROBE = textwrap.dedent(
    """
    import json, os, sys, threading
    fds = set(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    from ops_warehouse import preload
    took = preload.preload_task_libraries()
    # dbt's startup schemas are built: asked again, none is built anew
    import dbt_common.dataclass_schema as schemas
    rebuilt = []
    schemas.build_json_schema = lambda cls, *a, **k: rebuilt.append(cls.__name__)
    warmed = preload.warm_dbt_schemas()
    # a fork copies only the calling thread: nothing imported may have started one
    print(json.dumps({
        "took": took,
        "threads_before": threads,
        "threads_after": threading.active_count(),
        "new_fds": sorted(
            os.readlink(f"/proc/self/fd/{fd}")
            for fd in set(os.listdir("/proc/self/fd")) - fds
            if os.path.exists(f"/proc/self/fd/{fd}")
        ),
        "loaded": [m for m in preload.TASK_LIBRARIES if m in sys.modules],
        "warmed": warmed,
        "rebuilt": rebuilt,
    }))
    """
)


def test_preload_imports_every_library_and_starts_no_thread():
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["loaded"] == list(preload.TASK_LIBRARIES)
    assert set(probe["took"]) == {*preload.TASK_LIBRARIES, "dbt startup schemas"}
    assert probe["warmed"] == list(preload.DBT_STARTUP_SCHEMAS)
    assert probe["rebuilt"] == []
    assert probe["threads_after"] == probe["threads_before"]
    # no socket or database file left open to be shared by every forked task
    assert not [fd for fd in probe["new_fds"] if fd.startswith("socket:") or ".duckdb" in fd]


def test_preload_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("OPS_PRELOAD", "off")
    assert not preload.enabled()
    monkeypatch.setenv("OPS_PRELOAD", "on")
    assert preload.enabled()


def test_airflow_runs_the_preloading_local_executor(tmp_path):
    """`make up`'s Airflow loads the project's executor, a LocalExecutor that preloads."""
    from airflow.executors.local_executor import LocalExecutor

    from ops_warehouse.airflow.executor import WarehouseLocalExecutor

    env = airflow_env(make_settings(tmp_path, tmp_path / "world", "http://127.0.0.1:1"))
    path = env["AIRFLOW__CORE__EXECUTOR"]
    module, _, name = path.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is WarehouseLocalExecutor
    assert issubclass(WarehouseLocalExecutor, LocalExecutor)


def test_executor_preloads_before_its_workers_fork(monkeypatch):
    from airflow.executors.local_executor import LocalExecutor

    from ops_warehouse.airflow import executor as executor_module

    calls = []
    monkeypatch.setattr(
        executor_module.preload, "preload_task_libraries", lambda: calls.append("preload") or {}
    )
    monkeypatch.setattr(LocalExecutor, "start", lambda self: calls.append("fork workers"))
    monkeypatch.delenv("OPS_PRELOAD", raising=False)
    ex = executor_module.WarehouseLocalExecutor.__new__(executor_module.WarehouseLocalExecutor)
    ex.is_mp_using_fork = True
    ex.start()
    assert calls == ["preload", "fork workers"]
    calls.clear()
    ex.is_mp_using_fork = False  # spawn: nothing is shared, nothing to preload
    ex.start()
    assert calls == ["fork workers"]
