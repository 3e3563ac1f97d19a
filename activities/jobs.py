"""The job activities as Temporal registers them: methods of one object built with its config.

``JobActivities(config)`` is what the worker registers (``all()``), following the samples'
"activities as methods" pattern: the workflow calls them by reference
(``workflow.execute_activity_method(JobActivities.run_agent, ...)``), so a renamed or re-typed
activity fails type checking, not a running job. Each takes one pydantic model and returns one
(see activities.models). The work itself lives in one module per activity; this class adds what
comes from Temporal: heartbeats, and the workflow id and run id that name a run's artifact
directory.

None of these activities writes to Convex: the workflow records their results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import agent, checks, git_push, pull_request, workspace
from activities.artifact_store import ArtifactStore
from activities.config import JobConfig
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


def _heartbeat(*details: Any) -> None:
    activity.heartbeat(*details)


def _ids() -> tuple[str, str]:
    info = activity.info()
    return info.workflow_id or "no-workflow", info.workflow_run_id or "no-run"


class JobActivities:
    """The six job activities, bound to their configuration and artifact store."""

    def __init__(self, config: JobConfig, *, store: ArtifactStore | None = None) -> None:
        self.config = config
        self.store = store or ArtifactStore.for_jobs(config)

    @activity.defn(name="prepare_workspace")
    async def prepare_workspace(self, inp: PrepareWorkspaceInput) -> Workspace:
        """Clone or refresh the repository; a clean work branch from the base branch."""
        prepared = await workspace.prepare_workspace(inp, self.config, heartbeat=_heartbeat)
        return prepared.model_copy(update={"task_queue": self.config.worker_task_queue})

    @activity.defn(name="run_agent")
    async def run_agent(self, inp: RunAgentInput) -> AgentResult:
        """Run the agent in the workspace; heartbeats progress; killed on cancel or time limit."""
        workflow_id, run_id = _ids()
        return await agent.run_agent(
            inp, self.config, self.store, workflow_id, run_id, heartbeat=_heartbeat
        )

    @activity.defn(name="run_check")
    async def run_check(self, inp: RunCheckInput) -> CheckResult:
        """Run one check command in the workspace, with its own log."""
        workflow_id, run_id = _ids()
        return await checks.run_check(
            inp, self.config, self.store, workflow_id, run_id, heartbeat=_heartbeat
        )

    @activity.defn(name="commit_and_push")
    async def commit_and_push(self, inp: CommitAndPushInput) -> CommitResult:
        """Commit the agent's changes, push the branch, write the diff artifact."""
        workflow_id, run_id = _ids()
        return await git_push.commit_and_push(
            inp, self.config, self.store, workflow_id, run_id, heartbeat=_heartbeat
        )

    @activity.defn(name="capture_diff")
    async def capture_diff(self, inp: CaptureDiffInput) -> DiffResult:
        """Write the workspace's diff against the base without committing or pushing."""
        workflow_id, run_id = _ids()
        return await git_push.capture_diff(inp, self.config, self.store, workflow_id, run_id)

    @activity.defn(name="open_pull_request")
    async def open_pull_request(self, inp: OpenPullRequestInput) -> PullRequestResult:
        """Find or create the pull request on GitHub, or say why it is skipped."""
        return await pull_request.open_pull_request(inp, self.config)

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
