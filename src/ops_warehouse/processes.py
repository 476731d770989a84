"""Child processes that never outlive the command that started them.

`ops-demo` and `ops-demo up` run the demo APIs and Airflow's components as children. Each
child starts in a process group of its own, so a terminal's Ctrl-C reaches only the command,
which then stops them all; leaving the ``with Children()`` block, however it is left (an
error, Ctrl-C, SIGTERM turned into an exit by ``ops_warehouse.cli.run``), sends SIGTERM to
every child's group, waits, and SIGKILLs whatever is left of their process trees, including
grandchildren that moved to a group of their own (Airflow's task processes do).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import psutil

# how long the children get to stop after SIGTERM before they are killed
STOP_GRACE_S = 20.0


class Children:
    """Named child processes, each in a process group of its own, stopped together."""

    def __init__(self, grace_s: float = STOP_GRACE_S) -> None:
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen] = {}
        # every descendant seen so far: one whose parent died is no longer anyone's child
        self._seen: set[psutil.Process] = set()

    def start(self, name: str, args: Sequence[str], **popen_kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(list(args), start_new_session=True, **popen_kwargs)
        self.procs[name] = proc
        return proc

    def poll(self) -> tuple[str, int] | None:
        """The first child that has exited, with its exit status; None while all run.
        Also notes their current descendants, for ``stop``."""
        self._note_descendants()
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop(self) -> None:
        """SIGTERM to every child's process group; after ``grace_s``, SIGKILL to whatever
        is left of the children and everything they started."""
        if not self.procs:
            return
        with _signals_deferred():  # a second Ctrl-C must not cut the clean-up short
            self._note_descendants()
            for proc in self.procs.values():
                _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            while self._alive() and time.monotonic() < deadline:
                self._note_descendants()  # children started while stopping
                time.sleep(0.1)
            for proc in self.procs.values():
                _signal_group(proc.pid, signal.SIGKILL)
            for process in self._alive():
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
            for proc in self.procs.values():
                proc.wait(timeout=10)
            psutil.wait_procs(list(self._seen), timeout=5)
            self.procs.clear()
            self._seen.clear()

    def _note_descendants(self) -> None:
        for proc in self.procs.values():
            try:
                self._seen.update(psutil.Process(proc.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass

    def _alive(self) -> list[psutil.Process]:
        for proc in self.procs.values():
            proc.poll()  # reap children that ended, so they do not count as alive
        children = (_process(proc.pid) for proc in self.procs.values())
        alive = []
        for process in self._seen.union(c for c in children if c is not None):
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.NoSuchProcess:
                pass
        return alive

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone


class _signals_deferred:
    """SIGINT and SIGTERM wait until the block is left, then take effect (main thread only;
    elsewhere a no-op)."""

    def __enter__(self) -> None:
        self._previous: dict[int, object] = {}
        self._received: list[int] = []
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(
                signum, lambda received, _frame: self._received.append(received)
            )

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        if self._received:
            signal.raise_signal(self._received[0])


def port_holder(host: str, port: int) -> str | None:
    """None when ``host:port`` is free to listen on; else who listens there, as far as this
    user may see ("pid 123 (python3)"), or "another program"."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # as the servers do: a port left in TIME_WAIT by a stopped server counts as free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except psutil.Error:
        pass  # not allowed to look
    return "another program"
