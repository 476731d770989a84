"""The transform DAG through Airflow (`dag.test`, as `make demo` runs it): a blocking check
fails its task, nothing is published, the run is recorded as blocked and the data engineers
get one email; a clean run publishes and updates the `published` asset.

The Great Expectations suites are replaced by a stand-in whose results the test chooses
(the suites themselves are tested with the GX module); dbt_build is marked successful
(dbt is tested in tests/dbt) to keep this test near a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import duckdb

from ops_warehouse.airflow.environment import airflow_env
from ops_warehouse.pipeline import audit
from ops_warehouse.settings import PROJECT_ROOT
from ops_warehouse.warehouse import publish
from tests.quality.wap import SmtpSink, file_hash, message_text, run, working_copy

AIRFLOW_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from datetime import UTC, datetime

    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    Pool.create_or_update_pool("warehouse_writer", 1, "one writer", include_deferred=False)

    import ops_warehouse.pipeline.quality as quality
    from ops_warehouse.pipeline.quality.results import CheckResult

    calls, mode = [], {"blocking": True}

    def run_layers(settings, layers, as_of, run_id, *, full=True):
        out = []
        for layer in layers:
            calls.append([layer, as_of.isoformat(), run_id, full])
            out.append(CheckResult(
                suite=f"orders.{layer}", check="expect_column_values_to_not_be_null",
                column="order_id", severity="block", success=not mode["blocking"],
                unexpected_count=3 if mode["blocking"] else 0,
            ))
        return out

    def build_data_docs(settings):
        path = settings.home / "data_docs" / "index.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<html>docs</html>")
        return path

    quality.run_layers, quality.build_data_docs = run_layers, build_data_docs

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("transform")
    out = {}
    for name, day, blocking in (("blocked", 23, True), ("clean", 24, False)):
        mode["blocking"] = blocking
        calls.clear()
        dr = dag.test(logical_date=datetime(2026, 11, day, tzinfo=UTC),
                      mark_success_pattern="dbt_build")
        out[name] = {
            "run_id": dr.run_id, "state": str(dr.state), "calls": list(calls),
            "tasks": {ti.task_id: [str(ti.state), ti.try_number] for ti in dr.get_task_instances()},
        }
    with create_session() as session:
        out["published_events"] = [
            e.extra for e in session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == "ops://warehouse/published")
        ]
    print("RESULT " + json.dumps(out, default=str))
    """
)


def test_blocking_check_fails_its_airflow_task_and_a_clean_run_publishes(duckdb_marts, tmp_path):
    settings = working_copy(duckdb_marts, tmp_path / "home", alert_emails=("de@ops.test",))
    earlier = run("scheduled__2026-11-22")
    audit.record_run_start(settings, earlier)
    publish.publish(settings, earlier)
    published_before = file_hash(settings.published_path)

    with SmtpSink() as smtp:
        env = {k: v for k, v in airflow_env(settings).items() if not k.startswith("OPS_")}
        env.update(
            AIRFLOW_HOME=str(settings.home / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{settings.home / 'airflow.db'}",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(settings.home / "airflow" / "logs"),
            AIRFLOW_CONN_SMTP_DEFAULT=smtp.airflow_conn,
            OPS_HOME=str(settings.home),
            OPS_WAREHOUSE="duckdb",
            OPS_WAREHOUSE_PATH=str(settings.warehouse_path),
            OPS_PUBLISHED_PATH=str(settings.published_path),
            OPS_ALERT_EMAILS="de@ops.test",
        )
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env["PYTHONPATH"]])
        result = subprocess.run(
            [sys.executable, "-c", AIRFLOW_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        messages = list(smtp.messages)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = json.loads(
        next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:]
    )

    # 1. blocked at validate_raw: the task failed at its first try, nothing downstream ran
    blocked = out["blocked"]
    assert blocked["state"] == "failed"
    assert blocked["tasks"]["validate_raw"] == ["failed", 1]
    for task in ("dbt_build", "validate_marts", "publish"):
        assert blocked["tasks"][task][0] == "upstream_failed", task
    assert blocked["tasks"]["data_docs"] == ["success", 1], "the docs show why it blocked"
    assert [c[0] for c in blocked["calls"]] == ["raw"]
    assert blocked["calls"][0][1] == "2026-11-22", "as of the day before the logical date"
    assert blocked["calls"][0][3] is True, "as of a Sunday: a full build (OPS_FULL_REBUILD_DAYS)"
    assert len(messages) == 1, "one alert: the task's, not a second from the failure callback"
    text = message_text(messages[0])
    for expected in (
        "transform",
        "validate_raw",
        blocked["run_id"],
        "2026-11-23T00:00:00",
        "orders.raw expect_column_values_to_not_be_null (order_id) FAILED",
        "/dags/transform/runs/",
    ):
        assert expected in text, f"{expected!r} missing from the alert:\n{text}"

    # 2. the clean run went through and published
    clean = out["clean"]
    assert clean["state"] == "success", clean
    assert [c[0] for c in clean["calls"]] == ["raw", "staging", "marts"]
    assert [c[3] for c in clean["calls"]] == [False] * 3, "as of a Monday: an incremental day"
    assert {t: s for t, (s, _) in clean["tasks"].items()} == {
        "validate_raw": "success",
        "dbt_build": "success",
        "validate_marts": "success",
        "publish": "success",
        "data_docs": "success",
    }
    assert len(out["published_events"]) == 1
    assert out["published_events"][0]["as_of_date"] == "2026-11-23"
    assert out["published_events"][0]["published"] == str(settings.published_path)

    assert file_hash(settings.published_path) != published_before
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        statuses = dict(
            con.execute(
                "select run_id, status from audit.pipeline_runs where dag_id = 'transform'"
            ).fetchall()
        )
        results = con.execute(
            "select run_id, suite, success from audit.dq_results order by run_id, suite"
        ).fetchall()
    assert statuses == {
        earlier.run_id: "published",
        blocked["run_id"]: "blocked",
        clean["run_id"]: "published",
    }
    suites = [r for r in results if not r[1].endswith(".completeness")]
    assert suites == [
        (blocked["run_id"], "orders.raw", False),
        (clean["run_id"], "orders.marts", True),
        (clean["run_id"], "orders.raw", True),
        (clean["run_id"], "orders.staging", True),
    ]
    # the completeness gate ran with the marts' checks, compared with the earlier publish
    gate = {(r[0], r[1], r[2]) for r in results if r[1].endswith(".completeness")}
    assert (clean["run_id"], "fct_orders.completeness", True) in gate
    assert {r[2] for r in gate} == {True} and {r[0] for r in gate} == {clean["run_id"]}
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        assert con.execute(
            "select status from audit.pipeline_runs where run_id = ?", [clean["run_id"]]
        ).fetchone() == ("published",)
