"""Fixtures for the job activity tests: settings under tmp_path, real bare repositories made
with the git CLI, the stand-in agent, and an ActivityEnvironment that records heartbeats."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.config import JobConfig
from activities.jobs import JobActivities
from tests.git_repos import git, make_bare_repo

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tools" / "standins" / "codex_standin.py"
STANDIN_COMMAND = [sys.executable, str(STANDIN), "exec", "--json", "--sandbox", "workspace-write"]
WORKFLOW_ID = "work-order-test"
RUN_ID = "run-0001"


def read(path: str | Path) -> str:
    """A file's text (a plain function: async tests may not call pathlib's blocking I/O)."""
    return Path(path).read_text()


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def push_commit(remote: Path, branch: str, filename: str, content: str, base: Path) -> str:
    """Commit ``filename`` on ``branch`` of ``remote`` from a scratch clone; its sha."""
    scratch = base / f"scratch-{branch.replace('/', '-')}-{filename}"
    git("clone", "-q", str(remote), str(scratch), cwd=base)
    existing = git("ls-remote", "--heads", str(remote), branch, cwd=base)
    if existing:
        git("checkout", "-q", branch, cwd=scratch)
    else:
        git("checkout", "-q", "-b", branch, cwd=scratch)
    (scratch / filename).write_text(content)
    git("add", "-A", cwd=scratch)
    git("commit", "-qm", f"add {filename}", cwd=scratch)
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=scratch)
    return git("rev-parse", "HEAD", cwd=scratch)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def gone_soon(pid: int, within: float = 2.0) -> bool:
    """True once ``pid`` is gone; SIGKILL is delivered asynchronously, so allow a moment."""
    deadline = time.monotonic() + within
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def make_config(tmp_path: Path, **overrides: Any) -> JobConfig:
    """The job activities' config for a test: files under ``tmp_path``, the stand-in agent."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "codex_command": tuple(STANDIN_COMMAND),
        "agent_env_allow": ("CODEX_STANDIN_*",),
        "heartbeat_interval_seconds": 0.05,
        "kill_grace_seconds": 0.5,
        "git_timeout_seconds": 60.0,
        "github_token": None,
        "github_api_url": "https://api.github.com",
        "artifact_base_url": None,
        "git_author_name": "Jangar Test",
        "git_author_email": "jangar-test@example.test",
        "worker_task_queue": "jangar@test-worker",
        "allow_local_repos": True,  # the tests' repositories are local bare repositories
    }
    values.update(overrides)
    return JobConfig(**values)


@pytest.fixture
def config(tmp_path: Path) -> JobConfig:
    return make_config(tmp_path)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_bare_repo(tmp_path)


@pytest.fixture
def jobs(config: JobConfig) -> JobActivities:
    return JobActivities(config)


class RecordingEnvironment(ActivityEnvironment):
    """An ActivityEnvironment with a workflow id/run id and a list of heartbeats."""

    def __init__(self) -> None:
        super().__init__()
        self.heartbeats: list[tuple[Any, ...]] = []
        self.on_heartbeat = lambda *details: self.heartbeats.append(details)
        self.info = dataclasses.replace(
            ActivityEnvironment.default_info(),
            workflow_id=WORKFLOW_ID,
            workflow_run_id=RUN_ID,
        )


@pytest.fixture
def activity_env() -> Iterator[RecordingEnvironment]:
    yield RecordingEnvironment()
