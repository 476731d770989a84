"""Local by default: `ops-demo up` (`make up`) serves this machine only, keeps the UI
password to its owner, leaves no process behind on SIGTERM and refuses a taken port; the demo
server refuses writes a web page of another site could send; a failed DAG is named.

`ops-demo up` is started once for the module (about a minute on 2 cores); its SIGTERM test
comes last."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.processes import Children, port_holder
from ops_warehouse.settings import get_settings
from tests.helpers import free_port

OPS_DEMO = str(Path(sys.executable).with_name("ops-demo"))
READY = "Ctrl-C stops everything"


@dataclasses.dataclass
class Up:
    proc: subprocess.Popen
    home: Path
    output: Path
    env: dict[str, str]
    api_port: int
    demo_port: int

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]


def _up_env(home: Path, api_port: int, demo_port: int) -> dict[str, str]:
    # nothing of the developer's own settings: the defaults are what is under test
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        OPS_HOME=str(home),
        OPS_DEMO_SCALE="0.03",
        OPS_DEMO_PORT=str(demo_port),
        AIRFLOW__API__PORT=str(api_port),
        COLUMNS="200",
    )
    return env


@pytest.fixture(scope="module")
def up(tmp_path_factory) -> Iterator[Up]:
    home = tmp_path_factory.mktemp("up_home")
    api_port, demo_port = free_port(), free_port()
    env = _up_env(home, api_port, demo_port)
    output = home / "up.out"
    with output.open("w") as out:
        proc = subprocess.Popen(
            [OPS_DEMO, "up"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home
        )
    started = Up(proc, home, output, env, api_port, demo_port)
    try:
        deadline = time.monotonic() + 240
        while READY not in " ".join(output.read_text().split()):  # rich wraps lines
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ops-demo up did not come up:\n{output.read_text()[-4000:]}")
            time.sleep(1)
        yield started
    finally:
        # when a test failed before the SIGTERM one, or that one found processes left
        leftovers = started.tree() if proc.poll() is None else []
        if leftovers:
            proc.send_signal(signal.SIGTERM)
            psutil.wait_procs(leftovers, timeout=60)
        for process in _alive(leftovers) + _started_with_home(home):
            process.kill()


def _listeners(processes: list[psutil.Process]) -> set[tuple[str, int, str]]:
    found = set()
    for process in processes:
        try:
            for conn in process.net_connections("inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port, process.name()))
        except psutil.NoSuchProcess:
            pass
    return found


def test_up_listens_on_loopback_only(up):
    listeners: set[tuple[str, int, str]] = set()
    for _ in range(6):  # a log server would start a moment after its component
        listeners |= _listeners(up.tree())
        time.sleep(0.5)
    ports = {port for _, port, _ in listeners}
    assert {up.api_port, up.demo_port} <= ports, listeners
    open_to_others = {
        listener for listener in listeners if not ipaddress.ip_address(listener[0]).is_loopback
    }
    assert not open_to_others, f"listening beyond this machine: {open_to_others}"


def test_the_ui_password_is_its_owners_only_and_never_logged(up):
    path = up.home / "airflow" / "simple_auth_manager_passwords.json.generated"
    assert path.stat().st_mode & 0o777 == 0o600
    password = json.loads(path.read_text())["admin"]
    assert len(password) >= 16
    request = urllib.request.Request(
        f"http://127.0.0.1:{up.api_port}/auth/token",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as r:
        assert r.status == 201 and json.load(r)["access_token"]
    assert str(path) in "".join(up.output.read_text().split()), "the user is told where"
    for log in [up.output, *up.home.glob("logs/*.log")]:
        assert password not in log.read_text(errors="replace"), f"the password is in {log}"


def test_a_second_up_on_the_same_ports_stops_naming_port_and_setting(up):
    result = subprocess.run(
        [OPS_DEMO, "up"], env=up.env, capture_output=True, text=True, timeout=120, cwd=up.home
    )
    out = " ".join(result.stdout.split())
    assert result.returncode == 1, out
    assert f"port {up.api_port}" in out and "AIRFLOW__API__PORT" in out, out
    assert up.proc.poll() is None, "the first one runs on"


def test_sigterm_stops_every_process_up_started(up):
    """Last: stops `up`. Every process of its tree, and any other process started with its
    OPS_HOME (a task process that moved to a group of its own), is gone afterwards."""
    tree = up.tree()
    assert len(tree) >= 6, "ops-demo, demo server and Airflow's four components"
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=90) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10  # orphans' zombies are reaped by init
    while (alive := _alive(tree) + _started_with_home(up.home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, f"left running: {alive}"
    assert port_holder("127.0.0.1", up.api_port) is None
    assert port_holder("127.0.0.1", up.demo_port) is None


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def _started_with_home(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("OPS_HOME") == str(home):
                found.append(process)
        except psutil.Error:
            pass
    return _alive(found)


# --- the pieces, without Airflow ---------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "host", "execution_api"),
    [(None, "127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0", "127.0.0.1"), ("::", "::", "[::1]")],
)
def test_ops_airflow_host_decides_where_the_api_server_listens(
    monkeypatch, setting, host, execution_api
):
    from ops_warehouse.airflow.environment import airflow_env, api_url
    from ops_warehouse.settings import Settings

    for name in ("AIRFLOW__API__HOST", "AIRFLOW__API__BASE_URL", "OPS_AIRFLOW_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__PORT", "9191")
    if setting:
        monkeypatch.setenv("OPS_AIRFLOW_HOST", setting)
    env = airflow_env(Settings.from_env())
    assert env["AIRFLOW__API__HOST"] == host
    # the tasks reach the Task Execution API on the port it really listens on
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        f"http://{execution_api}:9191/execution/"
    )
    assert api_url(env).endswith(":9191")


def test_children_stop_kills_grandchildren_that_left_the_group_and_ignore_sigterm(tmp_path):
    # a child that ignores SIGTERM and starts a grandchild in a session of its own (as
    # Airflow's task processes leave their supervisor's group)
    script = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
        )
        print(grandchild.pid, flush=True)
        time.sleep(600)
        """
    )
    children = Children(grace_s=1)
    with children:
        proc = children.start("stubborn", [sys.executable, "-c", script], stdout=subprocess.PIPE)
        grandchild = psutil.Process(int(proc.stdout.readline()))
        assert os.getpgid(grandchild.pid) != os.getpgid(proc.pid)
        assert children.poll() is None
    assert proc.returncode == -signal.SIGKILL
    assert not _alive([grandchild])


def test_the_demo_server_refuses_cross_site_writes_and_serves_its_own_clients(tmp_path):
    from ops_demo.server import DemoServer

    with DemoServer(tmp_path, marketing_token="m", support_token="s") as srv:

        def call(method: str, path: str, body: bytes | None, **headers: str) -> int:
            request = urllib.request.Request(
                srv.url + path,
                data=body,
                method=method,
                headers={k.replace("_", "-"): v for k, v in headers.items()},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        change = json.dumps({"fault_rate": 1.0}).encode()
        refused = [
            call("POST", "/_demo/config", change, Content_Type="text/plain"),
            call("POST", "/_demo/config", b"fault_rate=1"),  # urllib's default: a form
            call("POST", "/_demo/config", change, Content_Type="multipart/form-data; b=x"),
            call(
                "POST",
                "/_demo/config",
                change,
                Content_Type="application/json",
                Origin="http://evil.example",
            ),
            call("POST", "/_demo/reset", None, Origin="null"),
            call("PUT", "/_demo/config", change, Origin="http://evil.example"),
            call("DELETE", "/_demo/config", None, Origin="http://evil.example"),
        ]
        assert refused == [403] * len(refused)
        assert srv.config["fault_rate"] == 0.0, "no refused write changed anything"
        # the demo's own clients: JSON, no Origin (or the server's own)
        assert call("POST", "/_demo/config", change, Content_Type="application/json") == 200
        assert srv.config["fault_rate"] == 1.0
        own = call("POST", "/_demo/reset", None, Origin=srv.url)
        assert own == 200 and srv.config["fault_rate"] == 0.0
        assert call("GET", "/_demo/config", None, Origin="http://evil.example") == 200


def test_a_demo_server_on_a_taken_port_stops_naming_port_and_setting(tmp_path):
    from ops_demo.run import demo_server
    from ops_demo.server import DemoServer

    # a first demo server that answers on the port, as another `ops-demo` would
    with DemoServer(tmp_path, marketing_token="m", support_token="s") as first:
        port = int(first.url.rsplit(":", 1)[1])
        settings = dataclasses.replace(get_settings(), demo_port=port, demo_dir=tmp_path)
        with pytest.raises(OpsWarehouseError) as error:
            with demo_server(settings, tmp_path / "demo-server.log"):
                pass
        message = str(error.value)
        assert f"port {port}" in message and "OPS_DEMO_PORT" in message
        assert f"pid {os.getpid()}" in message, "names who holds it"
        # the server's own command line says the same, instead of a traceback
        result = subprocess.run(
            [sys.executable, "-m", "ops_demo.server", "--dir", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert f"port {port}" in result.stderr and "OPS_DEMO_PORT" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_failed_dag_is_named_not_the_next_one(tmp_path, monkeypatch):
    from rich.console import Console

    from ops_demo import run

    def run_dags_printing(*results: str) -> str:
        """The error of ``_run_dags`` when ``airflow_run`` prints these result lines, then
        exits with status 1."""
        lines = "".join(f"print('OPS-DAG-RESULT {r}', flush=True); " for r in results)
        command = [sys.executable, "-c", lines + "raise SystemExit(1)"]
        monkeypatch.setattr(run, "airflow_run_command", lambda day: command)
        settings = dataclasses.replace(get_settings(), home=tmp_path)
        with pytest.raises(OpsWarehouseError) as error:
            run._run_dags(settings, "2026-11-23", tmp_path / "demo.log", Console(quiet=True))
        return str(error.value)

    order = list(run.DAG_ORDER)
    failing = order.index("transform")
    after = ", ".join(order[failing + 1 :])
    assert after, "DAGs run after transform"
    message = run_dags_printing(
        *(f"{dag_id} success 1.0" for dag_id in order[:failing]), "transform failed 2.0"
    )
    assert message.startswith("DAG transform ended failed for 2026-11-23"), message
    assert f"({after} did not run)" in message
    assert f"{order[failing + 1]} failed" not in message
    assert str(tmp_path / "demo.log") in message

    # a process that dies in the middle of a DAG (a traceback, no result line)
    message = run_dags_printing(f"{order[0]} success 1.0")
    assert message.startswith(f"DAG {order[1]} did not finish for 2026-11-23"), message
    assert f"({', '.join(order[2:])} did not run)" in message


def test_compose_publishes_on_this_machine_unless_told_otherwise():
    import yaml

    from ops_warehouse.settings import PROJECT_ROOT

    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    published = {
        name: [str(mapping) for mapping in service["ports"]]
        for name, service in services.items()
        if service.get("ports")
    }
    assert {"airflow-apiserver", "mailpit", "superset"} <= set(published)
    for name, mappings in published.items():
        for mapping in mappings:
            assert mapping.startswith("${OPS_BIND_HOST:-127.0.0.1}:"), f"{name}: {mapping}"
    example = (PROJECT_ROOT / "deploy" / "compose.env.example").read_text()
    assert "\nOPS_BIND_HOST=127.0.0.1\n" in example
