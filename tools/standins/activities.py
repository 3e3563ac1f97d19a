"""STAND-IN job and persistence activities: not the real ones, for workflow tests and the bench.

``StandinJobActivities`` registers under the real job activities' names and returns what they
would, driven by a ``Scenario`` (the agent fails, a check fails, the agent changes nothing, the
agent hangs until cancelled, the order is invalid), without git, an agent or GitHub. Given a
``FileStore`` it puts a small log and diff in Convex storage, as the real agent step does.
``NoConvexPersistence`` registers under the persistence activities' names and writes nothing:
the benchmark's no-Convex baseline. Production never registers either (worker.factories builds
the real ones).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contract import MAX_ID_LENGTH
from activities.job_loader import INVALID_WORK_ORDER
from activities.models import (
    AgentProgress,
    AgentResult,
    AgentUsage,
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
    StoredFile,
    Workspace,
    WorkspaceState,
)
from activities.persistence_models import (
    ArtifactAdd,
    EventAppend,
    EventBatch,
    NewEvent,
    RejectWorkOrder,
    RunStart,
    RunStatusResult,
    RunStatusUpdate,
    StepResult,
    StepUpdate,
)
from activities.storage import FileStore
from activities.webhook import WebhookInput, WebhookResult

BASE_SHA = "a" * 40
HEAD_SHA = "b" * 40


@dataclass
class Scenario:
    """What the stand-ins do; ``calls`` records the activities in the order they ran."""

    repo: str = "https://github.example/acme/app.git"
    prompt: str = "Add a NOTES.md"
    checks: tuple[str, ...] = ()
    agent_exit: int = 0
    failing_check: int | None = None
    changed: bool = True
    pr_skipped: bool = False
    agent_hangs: bool = False
    prepare_error: str | None = None
    invalid_order: str | None = None
    webhook_url: str | None = None
    agent_events: int = 2
    """How many progress events the agent leaves for the workflow to write."""
    agent_log_id_too_long: bool = False
    """The agent's log has a storage id longer than Convex ids: a result the workflow cannot
    record as it is."""
    calls: list[str] = field(default_factory=list)
    agent_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    agent_started: asyncio.Event = field(default_factory=asyncio.Event)


class StandinJobActivities:
    """STAND-IN job activities (see the module docstring)."""

    def __init__(self, scenario: Scenario, *, files: FileStore | None = None) -> None:
        self.s = scenario
        self.files = files

    async def _store(self, text: str, content_type: str) -> StoredFile | None:
        if self.files is None:
            return None
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "file"
            await asyncio.to_thread(path.write_text, text)
            return await self.files.put(path, content_type=content_type)

    @activity.defn(name="load_job")
    async def load_job(self, inp: LoadJobInput) -> JobSpec:
        self.s.calls.append("load_job")
        if self.s.invalid_order:
            raise ApplicationError(
                f"invalid work order: {self.s.invalid_order}",
                type=INVALID_WORK_ORDER,
                non_retryable=True,
            )
        return JobSpec(
            work_order_id=inp.work_order_id,
            repo=self.s.repo,
            branch=f"codex/{inp.work_order_id}",
            prompt=self.s.prompt,
            title=self.s.prompt.splitlines()[0][:80],
            checks=self.s.checks,
            webhook_url=self.s.webhook_url,
        )

    @activity.defn(name="prepare_workspace")
    async def prepare_workspace(self, inp: PrepareWorkspaceInput) -> Workspace:
        self.s.calls.append("prepare_workspace")
        if self.s.prepare_error:
            raise ApplicationError(
                self.s.prepare_error, type="RepositoryNotFound", non_retryable=True
            )
        state = WorkspaceState(
            work_order_id=inp.job.work_order_id,
            repo=inp.job.repo,
            branch=inp.job.branch,
            base_sha=BASE_SHA,
            commit_sha=BASE_SHA,
        )
        return Workspace(state=state, base_branch="main", repo=inp.job.repo, reused=False)

    @activity.defn(name="run_agent")
    async def run_agent(self, inp: RunAgentInput) -> AgentResult:
        self.s.calls.append("run_agent")
        self.s.agent_started.set()
        if self.s.agent_hangs:
            try:
                while True:
                    activity.heartbeat({"lines": 1})
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                self.s.agent_cancelled.set()
                raise
        ok = self.s.agent_exit == 0
        changed = ok and self.s.changed
        checkpoint = inp.state
        diff = None
        if changed:
            checkpoint = inp.state.model_copy(
                update={"commit_sha": HEAD_SHA, "bundle_storage_id": None}
            )
            diff = await self._store("+ a line\n", "text/x-diff")
        return AgentResult(
            outcome="succeeded" if ok else "failed",
            succeeded=ok,
            exit_code=self.s.agent_exit,
            timed_out=False,
            failure_reason=None if ok else f"the agent exited with code {self.s.agent_exit}",
            log=(
                StoredFile(storage_id="x" * (MAX_ID_LENGTH + 1), bytes=1)
                if self.s.agent_log_id_too_long
                else await self._store("stand-in agent output\n", "text/plain")
            ),
            checkpoint=checkpoint,
            diff=diff,
            files_changed=1 if changed else 0,
            insertions=1 if changed else 0,
            events_recorded=0,
            events_dropped=0,
            # The stand-in writes nothing live: its progress goes through the workflow.
            pending_events=self._pending(inp),
            lines=2,
            json_events=2,
            usage=AgentUsage(input_tokens=100, output_tokens=42),
            agent_ms=1234,
            duration_ms=1234,
        )

    def _pending(self, inp: RunAgentInput) -> tuple[NewEvent, ...]:
        kinds = ("thread.started", "turn.completed")
        return tuple(_event(inp, n, kinds[n % 2]) for n in range(self.s.agent_events))

    @activity.defn(name="run_check")
    async def run_check(self, inp: RunCheckInput) -> CheckResult:
        self.s.calls.append(f"run_check {inp.index}")
        passed = inp.index != self.s.failing_check
        return CheckResult(
            index=inp.index,
            command=inp.command,
            passed=passed,
            exit_code=0 if passed else 1,
            timed_out=False,
            duration_ms=10,
            log=await self._store(f"check {inp.index} output\n", "text/plain"),
            output_tail="" if passed else "1 test failed",
        )

    @activity.defn(name="commit_and_push")
    async def commit_and_push(self, inp: CommitAndPushInput) -> CommitResult:
        self.s.calls.append("commit_and_push")
        changed = inp.state.changed
        return CommitResult(
            changed=changed,
            reason=None if changed else "the agent made no changes",
            pushed=changed,
            branch=inp.state.branch,
            base_sha=inp.state.base_sha,
            commit_sha=inp.state.commit_sha if changed else None,
        )

    @activity.defn(name="open_pull_request")
    async def open_pull_request(self, inp: OpenPullRequestInput) -> PullRequestResult:
        self.s.calls.append("open_pull_request")
        if self.s.pr_skipped:
            return PullRequestResult(skipped=True, reason="no GITHUB_TOKEN is set")
        return PullRequestResult(
            skipped=False,
            url="https://github.example/acme/app/pull/7",
            number=7,
            created=True,
            repository="acme/app",
        )

    @activity.defn(name="notify")
    async def notify(self, inp: WebhookInput) -> WebhookResult:
        self.s.calls.append("notify")
        return WebhookResult(delivered=True, status=204)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.load_job,
            self.prepare_workspace,
            self.run_agent,
            self.run_check,
            self.commit_and_push,
            self.open_pull_request,
            self.notify,
        ]


def _event(inp: RunAgentInput, seq: int, kind: str) -> NewEvent:
    progress = AgentProgress(seq=seq, type=kind, summary=kind)
    return NewEvent(
        type="system",
        data={"agent": progress.model_dump(mode="json"), "attempt": 1},
        idempotency_key=f"standin/{inp.run_id}/agent/{seq}",
    )


class NoConvexPersistence:
    """STAND-IN persistence activities that write nothing: the no-Convex baseline of the bench.

    Same activity names and types as activities.persistence.PersistenceActivities, so the
    workflow schedules exactly the same activities; they answer at once without a Convex call.
    """

    @activity.defn(name="record_run_start")
    async def record_run_start(self, start: RunStart) -> str:
        return f"standin-run-{start.temporal_run_id}"

    @activity.defn(name="upsert_step")
    async def upsert_step(self, update: StepUpdate) -> StepResult:
        return StepResult(step_id=f"standin-{update.name}", status=update.status, changed=True)

    @activity.defn(name="add_artifact")
    async def add_artifact(self, artifact: ArtifactAdd) -> str:
        return f"standin-{artifact.idempotency_key}"

    @activity.defn(name="append_event")
    async def append_event(self, event: EventAppend) -> str:
        return f"standin-{event.idempotency_key}"

    @activity.defn(name="append_events")
    async def append_events(self, batch: EventBatch) -> int:
        return len(batch.events)

    @activity.defn(name="reject_work_order")
    async def reject_work_order(self, reject: RejectWorkOrder) -> bool:
        return True

    @activity.defn(name="update_run_status")
    async def update_run_status(self, update: RunStatusUpdate) -> RunStatusResult:
        return RunStatusResult(run_id=update.run_id, status=update.status, changed=True)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.record_run_start,
            self.upsert_step,
            self.add_artifact,
            self.append_event,
            self.append_events,
            self.reject_work_order,
            self.update_run_status,
        ]
