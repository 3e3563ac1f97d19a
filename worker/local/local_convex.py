"""Starts the local Convex backend (tools/local-backend) and stops it by PID.

Used by `jangar dev`, `make run` and the tests alike (with user auth and a data directory:
``worker.local.dev_auth.start_auth_backend``).

The backend is the project's real convex/ functions run by convex-test behind Convex's HTTP
function API: a stand-in for Convex cloud or the self-hosted backend, good for the wire format,
the functions' behaviour and token verification, not for Convex's concurrency (see its README).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from worker.local.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
DEV_ADMIN_KEY = "jangar-local-dev-admin-key"
"""The server's key when CONVEX_ADMIN_KEY is unset (see tools/local-backend/README.md)."""
TSX = ROOT / "node_modules" / ".bin" / "tsx"
SERVER = ROOT / "tools" / "local-backend" / "server.ts"
_LISTENING = re.compile(r"^convex local backend listening on (http://127\.0\.0\.1:(\d+))$")


class BackendStartError(RuntimeError):
    """The local backend did not print its URL line in time; the message carries its log."""


@dataclass
class RunningBackend:
    """A local backend this process started. ``stop()`` ends it by PID."""

    url: str
    port: int
    admin_key: str | None
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """Stop it by PID (see ``stop_process``) and remove its log; returns the exit code."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        stop_process(self.process, timeout)
        self.log_path.unlink(missing_ok=True)
        return self.process.returncode


def _drain(stream: IO[bytes]) -> None:
    """Keep reading so the server never blocks on a full stdout pipe."""
    for _ in iter(stream.readline, b""):
        pass


def start_local_backend(
    *,
    admin_key: str | None,
    port: int = 0,
    functions_dir: Path | None = None,
    data_dir: Path | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> RunningBackend:
    """Start the server with ``PORT=port`` and read its one start line.

    ``admin_key=None`` leaves CONVEX_ADMIN_KEY unset, so the server uses its development key.
    ``functions_dir`` serves another functions directory than convex/ (the server's own tests).
    ``data_dir`` keeps its documents and files there across restarts (None: in memory).
    ``env`` adds variables (``LOCAL_BACKEND_*``, and the ``JANGAR_AUTH_*`` that
    convex/auth.config.ts reads, which are otherwise never inherited from this process).
    """
    if not TSX.exists():
        raise BackendStartError(f"{TSX} is missing: run `npm ci` (make test does)")
    unset = ("CONVEX_ADMIN_KEY", "PORT", "LOCAL_BACKEND_FUNCTIONS_DIR", "LOCAL_BACKEND_DATA_DIR")
    child_env = {
        k: v for k, v in os.environ.items() if k not in unset and not k.startswith("JANGAR_AUTH_")
    }
    child_env.update(env or {})
    child_env["PORT"] = str(port)
    if functions_dir is not None:
        child_env["LOCAL_BACKEND_FUNCTIONS_DIR"] = str(functions_dir)
    if admin_key is not None:
        child_env["CONVEX_ADMIN_KEY"] = admin_key
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        child_env["LOCAL_BACKEND_DATA_DIR"] = str(data_dir)
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
        prefix="convex-local-backend-", suffix=".log", delete=False
    )
    log_path = Path(log_file.name)
    process = subprocess.Popen(
        [str(TSX), str(SERVER)],
        cwd=ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log_file,
        start_new_session=True,
    )
    log_file.close()
    assert process.stdout is not None
    stdout = process.stdout
    first: list[bytes] = []
    reader = threading.Thread(target=lambda: first.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = first[0].decode(errors="replace").strip() if first else ""
    match = _LISTENING.match(line)
    backend = RunningBackend("", 0, admin_key, process, log_path)
    if match is None:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)  # read the log only once it has stopped
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        log = backend.log()[-3000:]
        backend.stop(timeout=5)
        raise BackendStartError(
            f"local backend did not start within {timeout:g} s (first line {line!r}); log:\n{log}"
        )
    threading.Thread(target=_drain, args=(stdout,), daemon=True).start()
    backend.url = match.group(1)
    backend.port = int(match.group(2))
    return backend
