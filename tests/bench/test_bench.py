"""`make bench` end to end on a tiny world: every stage runs, is measured and is recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ops_warehouse.pipeline.contracts import entities_of
from ops_warehouse.settings import PROJECT_ROOT
from tests.conftest import SMALL_SCALE

STAGES = [
    "ingest_marketing",
    "ingest_sales",
    "ingest_support",
    "validate_raw",
    "dbt_build",
    "validate_marts",
    "publish",
    "report",
    "data_docs",
]
# stages the transform DAG and the reports DAGs run at once, as LocalExecutor does
TOGETHER = {"publish", "report", "data_docs"}


def _bench(*args: str, **env: str) -> subprocess.CompletedProcess:
    """bench/bench.py in a child process, without this environment's OPS_ settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPS_")}
    return subprocess.run(
        [sys.executable, "bench/bench.py", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_bench_measures_every_stage_of_both_phases_and_its_gx_baseline_agrees(tmp_path):
    results = tmp_path / "results"
    run = _bench(
        "--scale",
        f"{SMALL_SCALE:g}",
        "--no-airflow",
        "--no-baselines",
        "--root",
        str(tmp_path / "work"),
        "--keep",
        "--results-dir",
        str(results),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (path,) = results.glob("*.json")
    scale = json.loads(path.read_text())["scales"][f"{SMALL_SCALE:g}"]
    assert "error" not in scale
    for phase in ("full", "incremental"):
        stages = scale[phase]["stages"]
        assert [s["name"] for s in stages] == STAGES, phase
        for stage in stages:
            assert stage["ok"], (phase, stage["name"])
            assert stage["wall_s"] > 0 and stage["cpu_s"] > 0 and stage["peak_rss_mb"] > 0
        total = scale[phase]["total"]
        in_a_row = [s for s in stages if s["name"] not in TOGETHER]
        together = [s for s in stages if s["name"] in TOGETHER]
        (group,) = {json.dumps(s["detail"]["together"], sort_keys=True) for s in together}
        group = json.loads(group)
        assert group["group"] == "publish → report | data_docs", phase
        # the group's wall covers each of its lanes, and is counted once in the phase's
        by_name = {s["name"]: s["wall_s"] for s in together}
        lanes = max(by_name["publish"] + by_name["report"], by_name["data_docs"])
        assert group["wall_s"] >= lanes - 0.02, "(each wall is rounded to 10 ms)"
        assert total["wall_s"] == round(sum(s["wall_s"] for s in in_a_row) + group["wall_s"], 2)
        assert total["cpu_s"] == round(sum(s["cpu_s"] for s in stages), 2)
    # the reports of the day the run ran: the full phase's (as of the world's last day, a
    # Sunday) on the Monday of the weekly report, the incremental day's on the Tuesday
    reports = {
        p: scale[p]["stages"][STAGES.index("report")]["detail"] for p in ("full", "incremental")
    }
    assert "weekly_s" in reports["full"] and "daily_s" in reports["full"]
    assert "weekly_s" not in reports["incremental"] and "daily_s" in reports["incremental"]
    # the full load read every row the generated world serves, source by source
    served = scale["source_rows"]
    for stage in scale["full"]["stages"][:3]:
        source = stage["name"].removeprefix("ingest_")
        assert stage["rows"] == sum(served[e.name] for e in entities_of(source)), source
    assert scale["demo_server"]["runs"] == 2, "the demo server runs only while ingesting"
    assert f"Scale {SMALL_SCALE:g}" in (results / "BENCHMARKS.md").read_text()

    # the GX-vs-SQL baseline (`--no-baselines` above) on the warehouse the run built: every
    # staging and marts check has its SQL twin, and both count the same unexpected rows
    db = tmp_path / "floor" / "working.duckdb"
    db.parent.mkdir()
    shutil.copy(tmp_path / "work" / f"scale-{SMALL_SCALE:g}" / "home" / "warehouse" / db.name, db)
    out = tmp_path / "gx_vs_sql.json"
    run = _bench(
        "--task",
        "gx_vs_sql",
        "--out",
        str(out),
        "--kw",
        # the run's warehouse is as of its incremental day, the day after the full phase's
        json.dumps({"db": str(db), "as_of": scale["advance"]["detail"]["until"]}),
        OPS_HOME=str(tmp_path / "gx_home"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    baseline = json.loads(out.read_text())
    for layer in ("staging", "marts"):
        assert baseline["sql_checks"][layer] == baseline["gx_checks"][layer] > 0, layer
    assert baseline["unexpected_sql"] == baseline["unexpected_gx"]
