"""The embedded Airflow: SQLite metadata and LocalExecutor under the project's home folder,
serving this machine only unless told otherwise (``OPS_AIRFLOW_HOST``)."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.processes import Children
from ops_warehouse.settings import PROJECT_ROOT, Settings

# `airflow standalone`'s four components, started one by one so that each can be told where
# to listen. The scheduler and the triggerer would each start a log server on every
# interface ([logging] worker_log_server_port 8793 and trigger_log_server_port 8794; Airflow
# has no host setting for them), so both skip it: on one machine the API server reads the
# task logs from the log folder the tasks write.
LOCAL_COMPONENTS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "api-server": ["api-server"],
}
# what /api/v2/monitor/health must call healthy before the UI is announced
HEALTHY_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for every `airflow` command the project runs (demo, `make up`, tests).

    Values already set by the user win, so a deployment can point Airflow elsewhere.
    """
    home = settings.home / "airflow"
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # LocalExecutor, with dlt, GX and dbt imported once before it forks its workers
        # (airflow/executor.py): each task starts with them loaded
        "AIRFLOW__CORE__EXECUTOR": "ops_warehouse.airflow.executor.WarehouseLocalExecutor",
        # LocalExecutor pre-forks this many workers: match the cores, not the default 32.
        "AIRFLOW__CORE__PARALLELISM": str(os.cpu_count() or 2),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # the UI, the REST API and the Task Execution API: this machine only by default
        "AIRFLOW__API__HOST": settings.airflow_host,
        # SimpleAuthManager's generated passwords (written by ensure_passwords_file, mode 600)
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
            home / "simple_auth_manager_passwords.json.generated"
        ),
    }
    env = dict(os.environ)
    for key, value in defaults.items():
        env.setdefault(key, value)
    if "AIRFLOW__API__BASE_URL" not in env:
        # tasks reach the Task Execution API on the API server's own address and port (Airflow
        # assumes localhost:8080 otherwise)
        env.setdefault(
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            f"http://{_reachable(env['AIRFLOW__API__HOST'])}:{api_port(env)}/execution/",
        )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow(
    args: list[str], settings: Settings, log_file: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run one `airflow` CLI command with the project's environment."""
    env = airflow_env(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if log_file is None:
        return subprocess.run(
            [airflow_bin(), *args], env=env, check=check, capture_output=True, text=True
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.run(
            [airflow_bin(), *args],
            env=env,
            check=check,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def init_airflow(settings: Settings, log_file: Path | None = None) -> Path | None:
    """Create/upgrade the metadata DB, the single-slot writer pool and the UI users'
    passwords file (idempotent); return that file (None when every user is an admin)."""
    from ops_warehouse.airflow.dag_factory import WRITER_POOL

    airflow(["db", "migrate"], settings, log_file)
    airflow(
        ["pools", "set", WRITER_POOL, "1", "One writer of the working DuckDB at a time"],
        settings,
        log_file,
    )
    return ensure_passwords_file(airflow_env(settings))


def api_port(env: dict[str, str]) -> int:
    return int(env.get("AIRFLOW__API__PORT") or 8080)


def api_url(env: dict[str, str]) -> str:
    """Where a browser on this machine reaches the API server started with ``env``."""
    host = _reachable(env["AIRFLOW__API__HOST"])
    return f"http://{'localhost' if host == '127.0.0.1' else host}:{api_port(env)}"


def _reachable(host: str) -> str:
    """The address to connect to for a server bound to ``host`` (a wildcard means loopback)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host  # a host name
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{address}]" if address.version == 6 else str(address)


def ensure_passwords_file(env: dict[str, str]) -> Path | None:
    """SimpleAuthManager's passwords file, readable and writable by its owner only (mode 600),
    holding a password for every user of ``[core] simple_auth_manager_users``.

    Generated here, before the API server starts, because the API server would print every
    password it generates into its log. None when every user is an admin without a password
    (``[core] simple_auth_manager_all_admins``)."""
    if env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() == "true":
        return None
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    users = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or "admin:admin"
    names = [user.split(":")[0].strip() for user in users.split(",") if user.strip()]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # also a file an older run left readable by others
    with os.fdopen(fd, "r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # the API server's workers take the same lock
        passwords = json.loads(file.read().strip() or "{}")
        missing = [name for name in names if name not in passwords]
        if missing:
            passwords.update({name: _generate_password() for name in missing})
            file.seek(0)
            file.truncate()
            file.write(json.dumps(passwords) + "\n")
    return path


def _generate_password() -> str:
    # SimpleAuthManager's own alphabet: no characters that read alike
    alphabet = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def start_local_airflow(children: Children, env: dict[str, str], log_dir: Path) -> dict[str, Path]:
    """Start LOCAL_COMPONENTS as ``children``, each writing to ``log_dir/airflow-<name>.log``;
    return those log files by component."""
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {}
    for name, args in LOCAL_COMPONENTS.items():
        logs[name] = log_dir / f"airflow-{name}.log"
        with logs[name].open("a") as out:
            children.start(
                name, [airflow_bin(), *args], env=env, stdout=out, stderr=subprocess.STDOUT
            )
    return logs


def wait_until_healthy(
    children: Children, env: dict[str, str], logs: dict[str, Path], timeout_s: float = 300
) -> None:
    """Wait until the API server answers and calls every component healthy; stop with an
    error naming the component and its log if one exits first."""
    url = f"http://{_reachable(env['AIRFLOW__API__HOST'])}:{api_port(env)}/api/v2/monitor/health"
    deadline = time.monotonic() + timeout_s
    while True:
        exited = children.poll()
        if exited:
            name, status = exited
            raise OpsWarehouseError(
                f"Airflow's {name} stopped with exit status {status} while starting; "
                f"its log is {logs.get(name, 'the console')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                health = json.load(response)
            if all(
                (health.get(part) or {}).get("status") == "healthy" for part in HEALTHY_COMPONENTS
            ):
                return
        except (OSError, ValueError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise OpsWarehouseError(
                f"Airflow was not healthy at {url} after {timeout_s:.0f} s; "
                f"see the logs {', '.join(str(log) for log in logs.values())}"
            )
        time.sleep(1)
