"""The job activities as Temporal registers them: methods of one object built with its
dependencies.

``JobActivities(config, convex=..., sandbox=...)`` is what the worker registers (``all()``),
following the samples' "activities as methods" pattern: the workflow calls them by reference
(``workflow.execute_activity_method(JobActivities.run_agent, ...)``), so a renamed or re-typed
activity fails type checking, not a running job. Each takes one pydantic model and returns one
(see activities.models). The work itself lives in one module per activity; this class adds what
comes from Temporal: the attempt, its heartbeats and the worker shutting down.

Every activity that needs the workspace gets a ``WorkspaceState`` and rebuilds the tree from it
(``activities.workspace``), so any worker on the task queue can run any step of any job. The
job's Convex records are the workflow's business, except two things only the running step can
do: the agent's progress, written while it runs, and the files (logs, diffs, checkpoints)
uploaded to Convex storage before the step ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from activities import agent, checks, git_push, job_loader, pull_request, webhook
from activities.attempts import AttemptContext, previous_attempts
from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.live_events import LiveEvents
from activities.models import (
    AgentResult,
    CheckResult,
    CommitAndPushInput,
    CommitResult,
    JobSpec,
    LoadJobInput,
    OpenPullRequestInput,
    PrepareWorkspaceInput,
    PullRequestResult,
    RunAgentInput,
    RunCheckInput,
    Workspace,
)
from activities.sandbox import SandboxConfig
from activities.storage import FileStore
from activities.webhook import WebhookInput, WebhookResult
from activities.workspace import Workspaces


def _beat(ctx: AttemptContext) -> Callable[..., None]:
    """The heartbeat of a git step: names this worker, so a retry can say whose attempt it
    replaced (``previous_attempts``)."""

    def beat(*_details: Any) -> None:
        ctx.heartbeat({"worker": ctx.worker_id})

    return beat


def _context(worker_id: str) -> AttemptContext:
    info = activity.info()
    details = info.heartbeat_details
    previous = details[-1] if details and isinstance(details[-1], dict) else None

    async def shutdown() -> None:
        await activity.wait_for_worker_shutdown()

    return AttemptContext(
        workflow_id=info.workflow_id or "no-workflow",
        run_id=info.workflow_run_id or "no-run",
        attempt=info.attempt,
        worker_id=worker_id,
        previous=previous,
        heartbeat=lambda detail: activity.heartbeat(detail),
        worker_shutdown=shutdown,
    )


class JobActivities:
    """The job activities, bound to their configuration, Convex and the sandbox."""

    def __init__(
        self,
        config: JobConfig,
        *,
        convex: ConvexClient,
        sandbox: SandboxConfig,
        files: FileStore | None = None,
        workspaces: Workspaces | None = None,
    ) -> None:
        self.config = config
        self.convex = convex
        self.sandbox = sandbox
        self.files = files or FileStore(convex)
        self.workspaces = workspaces or Workspaces(config, files=self.files)

    def _live(self, inp: RunAgentInput, ctx: AttemptContext) -> Callable[[int], LiveEvents]:
        def make(attempt: int) -> LiveEvents:
            return LiveEvents(
                self.convex,
                run_id=inp.run_id,
                work_order_id=inp.state.work_order_id,
                key_prefix=f"{ctx.workflow_id}/{ctx.run_id}/agent/{attempt}",
                attempt=attempt,
            )

        return make

    @activity.defn(name="load_job")
    async def load_job(self, inp: LoadJobInput) -> JobSpec:
        """The work order, its repository entry and this worker's limits, validated."""
        return await job_loader.load_job(inp, convex=self.convex, config=self.config)

    @activity.defn(name="prepare_workspace")
    async def prepare_workspace(self, inp: PrepareWorkspaceInput) -> Workspace:
        """Resolve where the job starts (the base tip, or a follow-up's branch head)."""
        ctx = _context(self.config.worker_id)
        made = await self.workspaces.prepare(inp.job, heartbeat=_beat(ctx))
        return made.model_copy(update={"attempts": previous_attempts(ctx.attempt, ctx.previous)})

    @activity.defn(name="run_agent")
    async def run_agent(self, inp: RunAgentInput) -> AgentResult:
        """Run the agent sandboxed, live progress to Convex, then checkpoint its work."""
        ctx = _context(self.config.worker_id)
        return await agent.run_agent(
            inp,
            ctx,
            config=self.config,
            sandbox=self.sandbox,
            workspaces=self.workspaces,
            files=self.files,
            live=self._live(inp, ctx),
        )

    @activity.defn(name="run_check")
    async def run_check(self, inp: RunCheckInput) -> CheckResult:
        """Run one check command sandboxed on the agent's checkpoint."""
        return await checks.run_check(
            inp,
            _context(self.config.worker_id),
            config=self.config,
            sandbox=self.sandbox,
            workspaces=self.workspaces,
            files=self.files,
        )

    @activity.defn(name="commit_and_push")
    async def commit_and_push(self, inp: CommitAndPushInput) -> CommitResult:
        """Push the checkpoint commit to the work branch."""
        ctx = _context(self.config.worker_id)
        pushed = await git_push.commit_and_push(
            inp, config=self.config, workspaces=self.workspaces, heartbeat=_beat(ctx)
        )
        return pushed.model_copy(update={"attempts": previous_attempts(ctx.attempt, ctx.previous)})

    @activity.defn(name="open_pull_request")
    async def open_pull_request(self, inp: OpenPullRequestInput) -> PullRequestResult:
        """Find, update or create the pull request on GitHub, or say why it is skipped."""
        return await pull_request.open_pull_request(inp, self.config)

    @activity.defn(name="notify")
    async def notify(self, inp: WebhookInput) -> WebhookResult:
        """Deliver the repository's signed run-finished webhook."""
        return await webhook.notify(inp, self.config)

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """The bound activity methods, for ``Worker(activities=...)``."""
        return [
            self.load_job,
            self.prepare_workspace,
            self.run_agent,
            self.run_check,
            self.commit_and_push,
            self.open_pull_request,
            self.notify,
        ]
