"""Run dbt on the working warehouse, with the project's settings as dbt vars and env."""

from __future__ import annotations

import json
import os
from datetime import date

from ops_warehouse.errors import OpsWarehouseError, looks_transient
from ops_warehouse.settings import PROJECT_ROOT, Settings, get_settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# The schema dbt builds the marts in (dbt_project.yml: models.marts +schema): what publish
# gives readers, the BI role may read and the Parquet export writes.
MARTS = "marts"


class DbtFailed(OpsWarehouseError):
    """dbt reported failing models or tests: permanent (the same data and SQL fail the same
    way again), unless its message names a transient cause (a lock, a dropped connection)."""

    @property
    def permanent(self) -> bool:
        return not looks_transient(str(self))


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment dbt's profiles.yml reads (no secrets on the command line)."""
    from sqlalchemy.engine import make_url

    env = {
        "OPS_WAREHOUSE_PATH": str(settings.warehouse_path),
        "OPS_DBT_TARGET": settings.dbt_target,
        "OPS_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
    }
    pg = make_url(settings.postgres_url)
    env.update(
        OPS_PG_HOST=pg.host or "127.0.0.1",
        OPS_PG_PORT=str(pg.port or 5432),
        OPS_PG_USER=pg.username or "postgres",
        OPS_PG_PASSWORD=pg.password or "",
        OPS_PG_DATABASE=pg.database or "ops_warehouse",
    )
    env.update(
        OPS_SPARK_THRIFT_HOST=settings.spark_thrift_host,
        OPS_SPARK_THRIFT_PORT=str(settings.spark_thrift_port),
        OPS_SPARK_USER=settings.spark_user,
    )
    return env


def dbt_vars(settings: Settings) -> dict[str, str]:
    """Vars that are fixed for a deployment. The as-of date changes every run, so it goes in
    the environment instead (see the as_of_date macro): a changed var forces a full re-parse.

    The models write these values into SQL text: Settings accept only an IANA zone and an
    ISO 4217 code, and macros/setting_literals.sql checks their shape again."""
    return {"reporting_currency": settings.reporting_currency, "business_tz": settings.business_tz}


def dbt_command(args: list[str], settings: Settings) -> list[str]:
    """The ``dbt`` command line of ``args`` (a subcommand and its flags) for this deployment:
    the project, its profiles, the target and the folders under ``$OPS_HOME/dbt``; dbt reads
    the connection from the environment (``dbt_env``)."""
    import sys
    from pathlib import Path

    return [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        settings.dbt_target,
        "--target-path",
        str(settings.home / "dbt" / "target"),
        "--log-path",
        str(settings.home / "dbt" / "logs"),
        # dbt.log at info: each node's start, result and error, without the debug events
        # (every statement's SQL, connection and cache traffic), whose writing was 0.6-1.0 s
        # of a 13 s daily build at scale 10. The SQL each node ran is in target/run/.
        "--log-level-file",
        "info",
        "--vars",
        json.dumps(dbt_vars(settings)),
    ]


def dbt_invoke(
    args: list[str],
    *,
    settings: Settings | None = None,
    as_of: date | None = None,
    manifest: bool = True,
) -> None:
    """Run one dbt command in a child process; raise DbtFailed naming what failed.

    ``manifest=False`` (the daily build): ``target/manifest.json`` stays as the last command
    with ``manifest=True`` wrote it, ``run_results.json`` is written all the same. dbt writes
    the manifest twice per command, about 0.25 s each at any scale, and the project's manifest
    does not change with the data. Only where dbt runs forked; the ``dbt`` command writes both.

    A child process, not dbtRunner in-process: dbt-duckdb keeps its database connection
    open for the life of the process, which would lock readers out of the working file.
    Where this process already has dbt imported (a task forked from the executor's preloaded
    worker, ``ops_warehouse.preload``) and runs a single thread, the child is a fork that
    calls dbtRunner (``_run_forked``): it starts with dbt loaded instead of importing it
    again (3–4 s). Otherwise the child runs the ``dbt`` command.
    """
    import subprocess

    settings = settings or get_settings()
    target_dir = settings.home / "dbt" / "target"
    log_dir = settings.home / "dbt" / "logs"
    cli = dbt_command(args, settings)
    env = {**os.environ, **dbt_env(settings), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env["OPS_AS_OF_DATE"] = as_of.isoformat() if as_of is not None else ""
    run_results = target_dir / "run_results.json"
    run_results.unlink(missing_ok=True)  # a stale one would name the wrong failures
    if _can_fork_dbt():
        result = _run_forked(cli[1:], env, log_dir, None if manifest else run_results)
    else:
        result = subprocess.run(cli, env=env, capture_output=True, text=True)
    if result.returncode == 0:
        return
    failures = []
    if run_results.exists():
        for node in json.loads(run_results.read_text()).get("results", []):
            if node.get("status") in ("error", "fail"):
                name = node.get("unique_id", "?").split(".")[-1]
                failures.append(f"{name}: {node['status']} {node.get('message') or ''}".strip())
    detail = "; ".join(failures[:10]) or result.stdout[-2000:] + result.stderr[-2000:]
    if result.returncode < 0:  # the OOM killer or an operator, not the data
        detail = f"dbt was killed by signal {-result.returncode}; {detail}"
    raise DbtFailed(f"dbt {' '.join(args)} failed: {detail} (log: {log_dir / 'dbt.log'})")


def _can_fork_dbt() -> bool:
    """dbt is imported here already and no other thread runs (a fork copies only the calling
    thread: a lock another thread held would stay locked in the child)."""
    import sys
    import threading

    from ops_warehouse import preload

    return (
        "dbt.cli.main" in sys.modules
        and hasattr(os, "fork")
        and threading.active_count() == 1
        and preload.enabled()
    )


def _close_dbt_duckdb() -> None:
    """Close dbt-duckdb's database, as its exit handler does at a normal exit (os._exit runs
    no exit handlers). Closing writes DuckDB's log of the build's last changes into the file;
    a file left with that log (16 MB after a daily build at scale 10) makes every later
    connection read it again: about 0.1 s per connection of the checks that follow, until
    a writer merges it."""
    import gc
    import sys

    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is not None:
        connections.DuckDBConnectionManager.close_all_connections()
        gc.collect()


def _run_forked(args: list[str], env: dict[str, str], log_dir, run_results=None):
    """``dbt <args>`` through dbtRunner in a forked child; the same result as the command:
    its exit code (0 success, 1 failed nodes, 2 an error) and its output. With
    ``run_results`` (a path), dbt writes no JSON artifacts (``--no-write-json``) and the child
    writes the command's results there itself, as dbt would have."""
    import gc
    import subprocess
    import sys
    import tempfile

    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(mode="w+", dir=log_dir, prefix="dbt-output-") as out:
        sys.stdout.flush()
        sys.stderr.flush()
        # the child's garbage collector leaves alone what it inherits (as LocalExecutor does
        # before it forks its workers): it would scan every preloaded library's objects
        gc.freeze()
        pid = os.fork()
        if pid != 0:
            gc.unfreeze()
        if pid == 0:  # the child: never returns
            code = 2
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                # whatever stood in for the streams (Airflow's log redirection) stays behind
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.environ.clear()
                os.environ.update(env)
                from dbt.cli.main import dbtRunner

                if run_results is None:
                    result = dbtRunner().invoke(args)
                else:
                    from dbt.artifacts.schemas.run import RunExecutionResult

                    result = dbtRunner().invoke([*args, "--no-write-json"])
                    # a command that ran nodes, failed ones included; none after an exception
                    if isinstance(result.result, RunExecutionResult):
                        result.result.write(str(run_results))
                code = 0 if result.success else (1 if result.exception is None else 2)
            except BaseException:  # noqa: BLE001 - reported through the exit code and output
                import traceback

                traceback.print_exc()
            finally:
                _close_dbt_duckdb()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        output = out.read()
    return subprocess.CompletedProcess(
        ["dbt", *args], os.waitstatus_to_exitcode(status), output, ""
    )
