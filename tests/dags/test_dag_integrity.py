"""Every DAG imports with no credentials set, has tags and retries, and no cycle."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from ops_warehouse.settings import PROJECT_ROOT

EXPECTED = {
    "ingest_marketing",
    "ingest_sales",
    "ingest_support",
    "transform",
    "weekly_report",
    "daily_digest",
}
# DAGs that only read the published warehouse: their tasks need no writer slot
READ_ONLY = {"weekly_report", "daily_digest"}
# tasks of the other DAGs that do not touch the working warehouse (transform's data_docs reads
# Great Expectations' result files, beside publish)
READ_ONLY_TASKS = {("transform", "data_docs")}

CHECK = textwrap.dedent(
    """
    import json, time
    from airflow.dag_processing.dagbag import DagBag
    def asset_names(condition):
        if condition is None:
            return []
        if hasattr(condition, "uri"):
            return [condition.name]
        return [n for o in getattr(condition, "objects", []) for n in asset_names(o)]
    started = time.monotonic()
    bag = DagBag(dag_folder=%r)
    out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        out["dags"][dag_id] = {
            "tags": sorted(dag.tags),
            "retries": [t.retries for t in dag.tasks],
            "doc": bool(dag.doc_md),
            "pools": {t.task_id: t.pool for t in dag.tasks},
            "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
            "trigger_rules": {
                t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks
            },
            "schedule": type(dag.timetable).__name__,
            "cron": getattr(dag.timetable, "expression", None),
            "assets": sorted(asset_names(getattr(dag.timetable, "asset_condition", None))),
            "tasks": sorted(t.task_id for t in dag.tasks),
        }
        dag.check_cycle() if hasattr(dag, "check_cycle") else None
    out["seconds"] = time.monotonic() - started
    print(json.dumps(out))
    """
)


def _load_dags(tmp_path) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
    )
    result = subprocess.run(
        [sys.executable, "-c", CHECK % str(PROJECT_ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dags_import_cleanly_with_tags_retries_and_pool(tmp_path):
    report = _load_dags(tmp_path)
    assert report["errors"] == {}
    assert set(report["dags"]) == EXPECTED
    for dag_id, info in report["dags"].items():
        assert "ops-warehouse" in info["tags"], dag_id
        assert info["retries"] and all(r >= 1 for r in info["retries"]), dag_id
        assert info["doc"], f"{dag_id} has no doc_md"
        # every other task writes the working DuckDB: one writer at a time
        for task_id, pool in info["pools"].items():
            reads = dag_id in READ_ONLY or (dag_id, task_id) in READ_ONLY_TASKS
            assert pool == ("default_pool" if reads else "warehouse_writer"), (dag_id, task_id)


def test_the_data_docs_wait_for_the_marts_checks_whatever_they_decided(tmp_path):
    transform = _load_dags(tmp_path)["dags"]["transform"]
    assert transform["upstream"]["data_docs"] == ["validate_marts"]
    assert transform["upstream"]["publish"] == ["validate_marts"], "publish does not wait for them"
    assert transform["trigger_rules"]["data_docs"] == "all_done"


def test_each_report_has_its_own_dag_and_trigger(tmp_path):
    """The digest follows each publish, the weekly report the Monday clock, and neither DAG
    runs on the other's trigger (one DAG on both triggers skipped a task on every run)."""
    dags = _load_dags(tmp_path)["dags"]
    digest, weekly = dags["daily_digest"], dags["weekly_report"]
    assert digest["tasks"] == ["daily_digest"] and weekly["tasks"] == ["weekly_report"]
    assert weekly["cron"] == "0 8 * * 1" and weekly["assets"] == []
    assert digest["cron"] is None and digest["assets"] == ["published"]


def test_dag_files_hold_no_business_logic():
    for path in (PROJECT_ROOT / "dags").glob("*.py"):
        text = path.read_text()
        for heavy in (
            "import duckdb",
            "import dlt",
            "import pandas",
            "import sqlalchemy",
            "from dbt",
            "select ",
        ):
            assert heavy not in text, f"{path.name} contains {heavy!r}"


PLUGIN_LOAD = textwrap.dedent(
    """
    import json, sys, time
    from airflow import plugins_manager
    before = set(sys.modules)
    started = time.monotonic()
    plugins_manager.ensure_plugins_loaded()
    plugins, errors = plugins_manager._get_plugins()
    out = {
        "seconds": time.monotonic() - started,
        "new_modules": sorted(set(sys.modules) - before),
        "plugins": [p.name for p in plugins],
        "errors": {k: str(v) for k, v in errors.items()},
    }
    print(json.dumps(out))
    """
)


def test_airflow_plugin_load_imports_only_real_plugins(tmp_path):
    """Airflow imports every .py under its plugins folder as a top-level module at each plugin
    load: nothing of the package may live there."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT_ROOT / "plugins"),
    )
    result = subprocess.run(
        [sys.executable, "-c", PLUGIN_LOAD], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    ours = [m for m in report["new_modules"] if m.split(".")[0] == "ops_warehouse"]
    bare = [m for m in report["new_modules"] if "." not in m and not m.startswith("_")]
    assert ours == [], ours
    # the package once registered 47 bare module names here (settings, transform, build, …)
    assert not {"settings", "transform", "build", "data", "server", "run"} & set(bare), bare
    assert len(report["new_modules"]) < 200, len(report["new_modules"])
