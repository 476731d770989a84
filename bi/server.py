"""`make bi` and `make bi-stop`: Superset on the published warehouse, on this machine only.

``python -m bi.server start`` (`make bi`):

1. installs Superset's locked environment: bi/superset/requirements.txt (compiled, with
   hashes, from bi/superset/requirements.in) into bi/superset/.venv with ``uv pip sync``;
2. prepares Superset's metadata under ``$OPS_HOME/superset`` (SQLite): a secret key and the
   ``admin`` user's password, each written once to a file of mode 600 and never printed, then
   Superset's migrations and roles (again only when the environment changed);
3. starts Superset (gunicorn, one process of 8 threads) on 127.0.0.1:``OPS_SUPERSET_PORT``,
   logging to ``$OPS_HOME/logs/superset.log``, unless it already runs; a port held by another
   program stops it at once, naming the setting;
4. registers the published warehouse and creates or updates the "Ops overview" dashboard
   (bi/provision.py).

``python -m bi.server stop`` (`make bi-stop`) stops the Superset that ``start`` started (its
process id is in ``$OPS_HOME/superset/superset.pid``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.processes import port_holder
from ops_warehouse.settings import Settings, get_settings
from ops_warehouse.warehouse import readers

BI_DIR = Path(__file__).resolve().parent
REQUIREMENTS = BI_DIR / "superset" / "requirements.txt"
VENV = BI_DIR / "superset" / ".venv"
CONFIG = BI_DIR / "superset_config.py"
HOST = "127.0.0.1"
ADMIN = "admin"
PYTHON = "3.11"
THREADS = 8
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 20.0


class BiError(OpsWarehouseError):
    """Superset could not be installed, prepared, started or provisioned (says what to do)."""


@dataclass(frozen=True)
class Files:
    """Superset's files under ``$OPS_HOME``."""

    folder: Path
    secret_key: Path
    admin_password: Path
    pid: Path
    prepared: Path  # what environment the metadata was last migrated with
    log: Path


def files(settings: Settings) -> Files:
    folder = settings.home / "superset"
    return Files(
        folder=folder,
        secret_key=folder / "secret_key",
        admin_password=folder / "admin_password",
        pid=folder / "superset.pid",
        prepared=folder / "prepared",
        log=settings.home / "logs" / "superset.log",
    )


def base_url(settings: Settings) -> str:
    return f"http://{HOST}:{settings.superset_port}"


def browser_url(settings: Settings) -> str:
    return f"http://localhost:{settings.superset_port}"


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def install() -> float:
    """Superset's environment exactly as locked; the seconds it took."""
    started = time.monotonic()
    if not (VENV / "bin" / "python").exists():
        _run([*uv(), "venv", "--quiet", "--python", PYTHON, str(VENV)], "creating", None)
    _run(
        [
            *uv(),
            "pip",
            "sync",
            "--quiet",
            "--python",
            str(VENV / "bin" / "python"),
            str(REQUIREMENTS),
        ],
        f"installing {REQUIREMENTS.relative_to(BI_DIR.parent)}",
        None,
    )
    return time.monotonic() - started


def superset_env(settings: Settings) -> dict[str, str]:
    """Environment of every Superset command: this configuration, Superset's files in
    ``$OPS_HOME/superset``, the same OPS_* settings."""
    env = dict(os.environ)
    env.update(
        OPS_HOME=str(settings.home),
        SUPERSET_CONFIG_PATH=str(CONFIG),
        SUPERSET_HOME=str(files(settings).folder),
        FLASK_APP="superset",
    )
    return env


def prepare(settings: Settings) -> None:
    """Secret key and admin password files, then Superset's metadata: migrations, roles and
    the admin user, when this environment has not prepared them yet."""
    f = files(settings)
    f.folder.mkdir(parents=True, exist_ok=True)
    f.folder.chmod(0o700)  # Superset's metadata holds the warehouse password (encrypted)
    f.log.parent.mkdir(parents=True, exist_ok=True)
    for path in (f.secret_key, f.admin_password):
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(32 if path == f.admin_password else 48))
    stamp = hashlib.sha256(REQUIREMENTS.read_bytes() + CONFIG.read_bytes()).hexdigest()
    if (f.folder / "superset.db").exists() and _read(f.prepared) == stamp:
        return
    superset = str(VENV / "bin" / "superset")
    env = superset_env(settings)
    _run([superset, "db", "upgrade"], "migrating Superset's metadata", f.log, env)
    # the password goes in on stdin (click's prompt), so that no process list shows it
    password = f.admin_password.read_text().strip()
    _run(
        [superset, "fab", "create-admin", "--username", ADMIN, "--firstname", "Ops"]
        + ["--lastname", "Admin", "--email", "admin@localhost"],
        "creating Superset's admin user",
        f.log,
        env,
        stdin=f"{password}\n{password}\n",
    )
    _run([superset, "init"], "setting up Superset's roles", f.log, env)
    f.prepared.write_text(stamp)


def running(settings: Settings) -> psutil.Process | None:
    """The Superset ``start`` started, if it still runs."""
    pid = _read(files(settings).pid)
    if not pid:
        return None
    try:
        process = psutil.Process(int(pid))
        if process.is_running() and "gunicorn" in " ".join(process.cmdline()):
            return process
    except (psutil.Error, ValueError):
        pass
    return None


def start_server(settings: Settings) -> None:
    """Superset's web server in the background, until it answers on /health."""
    f = files(settings)
    holder = port_holder(HOST, settings.superset_port)
    if holder:
        raise BiError(
            f"port {settings.superset_port} is taken by {holder}: stop it, or set "
            "OPS_SUPERSET_PORT to a free port"
        )
    with f.log.open("ab") as log:
        process = subprocess.Popen(
            [
                str(VENV / "bin" / "gunicorn"),
                f"--bind={HOST}:{settings.superset_port}",
                "--workers=1",
                "--worker-class=gthread",
                f"--threads={THREADS}",
                "--timeout=120",
                "--limit-request-line=0",
                "--limit-request-field_size=0",
                "superset.app:create_app()",
            ],
            env=superset_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make bi`; `make bi-stop` ends it
        )
    f.pid.write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BiError(f"Superset exited at start (status {process.returncode}); see {f.log}")
        try:
            if requests.get(f"{base_url(settings)}/health", timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(settings)
    raise BiError(f"Superset did not answer within {START_TIMEOUT_S:.0f} s; see {f.log}")


def stop(settings: Settings) -> bool:
    """Stop the Superset ``start`` started (SIGTERM, then SIGKILL after a grace period);
    False when none ran."""
    process = running(settings)
    files(settings).pid.unlink(missing_ok=True)
    if process is None:
        return False
    tree = [process, *process.children(recursive=True)]
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_S)
    for leftover in alive:
        leftover.kill()
    psutil.wait_procs(alive, timeout=5)
    return True


def start(settings: Settings):
    """`make bi`: install, prepare, start (unless running) and provision; returns what
    bi/provision.py made."""
    from bi.provision import Superset, provision

    _check_published(settings)
    install()
    prepare(settings)
    if running(settings) is None:
        start_server(settings)
    api = Superset(base_url(settings), ADMIN, files(settings).admin_password.read_text().strip())
    return provision(api, settings)


def _check_published(settings: Settings) -> None:
    try:
        readers.connect_published(settings).close()
    except readers.PublishedFileMissing as exc:
        raise BiError(f"{exc}; Superset shows the published warehouse only") from None
    except Exception as exc:  # PostgreSQL: no published database, or no bi_reader role yet
        raise BiError(
            "cannot read the published warehouse as bi_reader "
            f"({type(exc).__name__}: {exc}); run the pipeline (make demo) and `ops bi-reader` "
            "first"
        ) from None


def _run(
    args: list[str],
    what: str,
    log: Path | None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> None:
    if log is None:
        result = subprocess.run(args, env=env, capture_output=True, text=True, input=stdin)
        output = result.stderr[-2000:]
    else:
        with log.open("a") as out:
            result = subprocess.run(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, input=stdin
            )
        output = f"see {log}"
    if result.returncode != 0:
        raise BiError(f"{what} failed (exit status {result.returncode}): {output}")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def _start_command(args) -> None:
    settings = get_settings()
    made = start(settings)
    f = files(settings)
    where = (
        readers.published_url(settings)
        if settings.warehouse == "duckdb"
        else "PostgreSQL, as bi_reader"
    )
    print(f"Superset: {browser_url(settings)}/superset/dashboard/{made.slug}/")
    print(f"  user {ADMIN}, password in {f.admin_password} (mode 600)")
    print(f"  warehouse: {where}")
    print(f"  log: {f.log}; make bi-stop stops it")


def _stop_command(args) -> None:
    print("Superset stopped" if stop(get_settings()) else "Superset was not running")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ops_warehouse.cli import run

    parser = argparse.ArgumentParser(prog="python -m bi.server", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(required=True)
    commands.add_parser("start", help="install, start and provision Superset").set_defaults(
        func=_start_command
    )
    commands.add_parser("stop", help="stop the Superset `start` started").set_defaults(
        func=_stop_command
    )
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
