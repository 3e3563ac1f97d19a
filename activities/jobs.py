"""The job activities as Temporal registers them: one object holding the worker's settings.

``JobActivities(settings).all()`` is what the worker registers; the workflow calls them by name
(``prepare_workspace``, ``run_agent``, ``run_check``, ``commit_and_push``,
``open_pull_request``), one pydantic model in, one out (see activities.models). The work itself
lives in one module per activity; this class supplies what comes from Temporal: heartbeats,
and the workflow id and run id that name the run's artifact directory.

None of these activities writes to Convex: the workflow records their results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import agent, checks, git_push, pull_request, workspace
from activities.artifact_store import ArtifactStore
from activities.models import (
    AgentResult,
    CaptureDiffInput,
    CheckResult,
    CommitAndPushInput,
    CommitResult,
    DiffResult,
    OpenPullRequestInput,
    PrepareWorkspaceInput,
    PullRequestResult,
    RunAgentInput,
    RunCheckInput,
    Workspace,
)
from worker.settings import Settings

PREPARE_WORKSPACE = "prepare_workspace"
RUN_AGENT = "run_agent"
RUN_CHECK = "run_check"
COMMIT_AND_PUSH = "commit_and_push"
OPEN_PULL_REQUEST = "open_pull_request"
CAPTURE_DIFF = "capture_diff"


def _heartbeat(*details: Any) -> None:
    activity.heartbeat(*details)


def _ids() -> tuple[str, str]:
    info = activity.info()
    return info.workflow_id or "no-workflow", info.workflow_run_id or "no-run"


class JobActivities:
    """The five job activities, bound to the worker's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ArtifactStore.from_settings(settings)

    @activity.defn(name=PREPARE_WORKSPACE)
    async def prepare_workspace(self, inp: PrepareWorkspaceInput) -> Workspace:
        """Clone or refresh the repository; a clean work branch from the base branch."""
        prepared = await workspace.prepare_workspace(inp, self.settings, heartbeat=_heartbeat)
        return prepared.model_copy(update={"task_queue": self.settings.worker_task_queue})

    @activity.defn(name=RUN_AGENT)
    async def run_agent(self, inp: RunAgentInput) -> AgentResult:
        """Run the agent in the workspace; heartbeats progress; killed on cancel or time limit."""
        workflow_id, run_id = _ids()
        return await agent.run_agent(
            inp, self.settings, self.store, workflow_id, run_id, heartbeat=_heartbeat
        )

    @activity.defn(name=RUN_CHECK)
    async def run_check(self, inp: RunCheckInput) -> CheckResult:
        """Run one check command in the workspace, with its own log."""
        workflow_id, run_id = _ids()
        return await checks.run_check(
            inp, self.settings, self.store, workflow_id, run_id, heartbeat=_heartbeat
        )

    @activity.defn(name=COMMIT_AND_PUSH)
    async def commit_and_push(self, inp: CommitAndPushInput) -> CommitResult:
        """Commit the agent's changes, push the branch, write the diff artifact."""
        workflow_id, run_id = _ids()
        return await git_push.commit_and_push(
            inp, self.settings, self.store, workflow_id, run_id, heartbeat=_heartbeat
        )

    @activity.defn(name=CAPTURE_DIFF)
    async def capture_diff(self, inp: CaptureDiffInput) -> DiffResult:
        """Write the workspace's diff against the base without committing or pushing."""
        workflow_id, run_id = _ids()
        return await git_push.capture_diff(inp, self.settings, self.store, workflow_id, run_id)

    @activity.defn(name=OPEN_PULL_REQUEST)
    async def open_pull_request(self, inp: OpenPullRequestInput) -> PullRequestResult:
        """Find or create the pull request on GitHub, or say why it is skipped."""
        return await pull_request.open_pull_request(inp, self.settings)

    def all(self) -> list[Callable[..., Any]]:
        """The bound activity methods, for ``Worker(activities=...)``."""
        return [
            self.prepare_workspace,
            self.run_agent,
            self.run_check,
            self.commit_and_push,
            self.open_pull_request,
            self.capture_diff,
        ]
