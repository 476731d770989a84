"""dbt through a fork of a process that has dbt imported (pipeline/transform.py _run_forked):
the same outcome as the ``dbt`` command, without importing dbt again."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, subprocess, sys
    from pathlib import Path
    import dbt.cli.main  # what the executor's preload leaves in every task process
    from ops_warehouse.pipeline import transform
    from ops_warehouse.pipeline.transform import DbtFailed, dbt_invoke
    from tests.conftest import make_settings

    home = Path(sys.argv[1])
    (home / "warehouse").mkdir(parents=True)
    settings = make_settings(home, home / "world", "http://127.0.0.1:1")

    run = subprocess.run

    def no_dbt_command(cli, *args, **kwargs):
        if str(cli[0]).endswith("/dbt"):
            raise AssertionError("the dbt command ran instead of the fork")
        return run(cli, *args, **kwargs)

    subprocess.run = no_dbt_command
    out = {"can_fork": transform._can_fork_dbt()}
    dbt_invoke(["seed", "--select", "sla_targets"], settings=settings)
    out["seeded"] = (home / "dbt" / "target" / "run_results.json").exists()
    # the fork's end closes dbt's database, as a normal exit does: its changes are in the file
    out["log_left"] = (home / "warehouse" / "working.duckdb.wal").exists()
    # the daily build's way: dbt's results, but the manifest left as it was
    target = home / "dbt" / "target"
    manifest_written = (target / "manifest.json").stat().st_mtime_ns
    dbt_invoke(["seed", "--select", "sla_targets"], settings=settings, manifest=False)
    results = json.loads((target / "run_results.json").read_text())
    out["results_without_manifest"] = [r["unique_id"] for r in results["results"]]
    out["manifest_kept"] = (target / "manifest.json").stat().st_mtime_ns == manifest_written
    try:
        dbt_invoke(["build", "--select", "stg_sales__orders"], settings=settings, manifest=False)
        out["failed"] = None
    except DbtFailed as exc:
        out["failed"] = str(exc)
    out["failed_results_written"] = (target / "run_results.json").exists()
    out["manifest_kept_after_failure"] = (
        (target / "manifest.json").stat().st_mtime_ns == manifest_written
    )
    print(json.dumps(out))
    """
)


def test_forked_dbt_succeeds_and_fails_as_the_command_does(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["can_fork"] is True
    assert out["seeded"] is True
    # a log left behind would be read again by every later connection (transform.py
    # _close_dbt_duckdb)
    assert out["log_left"] is False
    assert out["results_without_manifest"] == ["seed.ops_warehouse.sla_targets"]
    assert out["manifest_kept"] is True
    # the staging model reads a raw table this empty warehouse does not have: the failed node
    # is named ("<node>: error ...") from the results the child wrote
    assert out["failed"] is not None
    assert "stg_sales__orders" in out["failed"]
    assert ": error " in out["failed"]
    assert out["failed_results_written"] is True
    assert out["manifest_kept_after_failure"] is True

    import duckdb

    con = duckdb.connect(str(tmp_path / "warehouse" / "working.duckdb"), read_only=True)
    try:
        rows = con.execute("select count(*) from seeds.sla_targets").fetchone()[0]
    finally:
        con.close()
    assert rows > 0


def test_no_fork_without_dbt_imported_or_with_other_threads(monkeypatch):
    import threading

    from ops_warehouse.pipeline import transform

    monkeypatch.delitem(sys.modules, "dbt.cli.main", raising=False)
    assert transform._can_fork_dbt() is False
    monkeypatch.setitem(sys.modules, "dbt.cli.main", object())
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert transform._can_fork_dbt() is False
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setenv("OPS_PRELOAD", "off")
    assert transform._can_fork_dbt() is False
    monkeypatch.setenv("OPS_PRELOAD", "on")
    assert transform._can_fork_dbt() is True
