"""Fixtures for the job activity tests: a JobConfig under tmp_path, real bare repositories made
with the git CLI, the stand-in agent run under the real sandbox (bubblewrap; ``off`` only when
it is not installed), files put in the local Convex backend's storage, and an
ActivityEnvironment that records heartbeats."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.models import JobSpec, PrepareWorkspaceInput, RunAgentInput, Workspace
from activities.sandbox import SandboxConfig
from activities.storage import FileStore
from tests.git_repos import git, make_bare_repo
from worker.cli.submit import submit_as_operator

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tools" / "standins" / "codex_standin.py"
# The interpreter itself (not the venv's symlink) and the stand-in's directory: what the
# sandbox must show read-only for the stand-in agent to run.
PYTHON = os.path.realpath(sys.executable)
STANDIN_COMMAND = [PYTHON, str(STANDIN), "exec", "--json"]
SANDBOX_READ_ONLY = (Path(sys.base_prefix).resolve(), STANDIN.parent)
HAVE_BWRAP = shutil.which("bwrap") is not None
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
        "git_author_name": "Jangar Test",
        "git_author_email": "jangar-test@example.test",
        "worker_id": "test-worker",
        "allow_local_repos": True,
    }
    values.update(overrides)
    return JobConfig(**values)


@pytest.fixture
def config(tmp_path: Path) -> JobConfig:
    return make_config(tmp_path)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_bare_repo(tmp_path)


def make_sandbox(config: JobConfig) -> SandboxConfig:
    """The sandbox the worker would use: bwrap when installed, hiding the data directory."""
    return SandboxConfig(
        mode="bwrap" if HAVE_BWRAP else "off",
        extra_read_only=SANDBOX_READ_ONLY,
        hidden=(config.data_dir.resolve(),),
    )


@pytest.fixture
def files(convex_client: ConvexClient) -> FileStore:
    return FileStore(convex_client, patience_seconds=10)


@pytest.fixture
def jobs(config: JobConfig, convex_client: ConvexClient, files: FileStore) -> JobActivities:
    return JobActivities(config, convex=convex_client, sandbox=make_sandbox(config), files=files)


class RecordingEnvironment(ActivityEnvironment):
    """An ActivityEnvironment with a workflow id/run id and a list of heartbeats."""

    def __init__(self) -> None:
        super().__init__()
        self.heartbeats: list[tuple[Any, ...]] = []
        self.beating = asyncio.Event()  # set at the first heartbeat
        self.on_heartbeat = self._record
        self.info = dataclasses.replace(
            ActivityEnvironment.default_info(),
            workflow_id=WORKFLOW_ID,
            workflow_run_id=RUN_ID,
        )

    def _record(self, *details: Any) -> None:
        self.heartbeats.append(details)
        self.beating.set()


@pytest.fixture
def activity_env() -> Iterator[RecordingEnvironment]:
    yield RecordingEnvironment()


async def convex_run(convex: ConvexClient, repo: str) -> tuple[str, str]:
    """A real work order and run in the local backend: the agent's live events need one."""
    order = (
        await submit_as_operator(convex, repo=repo, prompt="do it", title="t", user="activity-test")
    ).work_order_id
    run = await convex.mutation(
        "runs:start",
        {
            "workflowRequestId": order,
            "temporalWorkflowId": f"work-order-{order}",
            "temporalRunId": "run-0001",
            "taskQueue": "jangar",
            "workerId": "test-worker",
            "repo": repo,
            "branch": f"codex/{order}",
            "startedAt": int(time.time() * 1000),
        },
    )
    return str(order), str(run)


def job_spec(order_id: str, remote: Path | str, **fields: Any) -> JobSpec:
    """The job load_job would resolve for an order on ``remote``."""
    values: dict[str, Any] = {
        "work_order_id": order_id,
        "repo": str(remote),
        "branch": f"codex/{order_id}",
        "prompt": "Write a greeting",
        "title": "Write a greeting",
    }
    values.update(fields)
    return JobSpec(**values)


@dataclass
class Prepared:
    """A job with a real Convex run and its prepared workspace."""

    order_id: str
    run_id: str
    job: JobSpec
    workspace: Workspace

    def agent(self, prompt: str = "Write a greeting", **fields: Any) -> RunAgentInput:
        values: dict[str, Any] = {
            "state": self.workspace.state,
            "prompt": prompt,
            "message": f"{prompt}\n\nby the test",
            "committed_at_ms": 1_764_000_000_000,
            "run_id": self.run_id,
        }
        values.update(fields)
        return RunAgentInput(**values)


@pytest.fixture
async def prepared(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    convex_client: ConvexClient,
    remote: Path,
) -> Prepared:
    order_id, run_id = await convex_run(convex_client, str(remote))
    job = job_spec(order_id, remote)
    workspace = await activity_env.run(jobs.prepare_workspace, PrepareWorkspaceInput(job=job))
    return Prepared(order_id, run_id, job, workspace)
