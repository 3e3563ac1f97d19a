"""STAND-IN job and persistence activities: not the real ones, for workflow tests and the bench.

``StandinJobActivities`` registers under the real job activities' names and returns what they
would, driven by a ``Scenario`` (the agent fails, a check fails, the agent changes nothing, the
agent hangs until cancelled), without git, an agent or GitHub. ``NoConvexPersistence`` registers
under the persistence activities' names and writes nothing: the benchmark's no-Convex baseline.
Production never registers either (worker.factories builds the real ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import (
    AgentProgress,
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
from activities.persistence_models import (
    ArtifactAdd,
    EventAppend,
    RunStart,
    RunStatusResult,
    RunStatusUpdate,
    StepResult,
    StepUpdate,
)

BASE_SHA = "a" * 40
HEAD_SHA = "b" * 40


@dataclass
class Scenario:
    agent_exit: int = 0
    failing_check: int | None = None
    changed: bool = True
    pr_skipped: bool = False
    agent_hangs: bool = False
    prepare_error: str | None = None
    calls: list[str] = field(default_factory=list)
    agent_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    agent_started: asyncio.Event = field(default_factory=asyncio.Event)


class StandinJobActivities:
    """STAND-IN job activities; ``calls`` lists the activity names in the order they ran."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario

    @activity.defn(name="prepare_workspace")
    async def prepare_workspace(self, inp: PrepareWorkspaceInput) -> Workspace:
        self.s.calls.append("prepare_workspace")
        if self.s.prepare_error:
            raise ApplicationError(
                self.s.prepare_error, type="RepositoryNotFound", non_retryable=True
            )
        return Workspace(
            path=f"/tmp/ws/{inp.work_order_id}",
            branch=inp.branch or f"codex/{inp.work_order_id}",
            base_branch=inp.base_branch or "main",
            base_sha=BASE_SHA,
            repo=inp.repo,
            reused=False,
        )

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
        return AgentResult(
            outcome="succeeded" if ok else "failed",
            succeeded=ok,
            exit_code=self.s.agent_exit,
            timed_out=False,
            failure_reason=None if ok else f"the agent exited with code {self.s.agent_exit}",
            log_path="/tmp/agent.log",
            log_url="file:///tmp/agent.log",
            progress=(
                AgentProgress(seq=0, type="thread.started", summary="thread started"),
                AgentProgress(seq=1, type="turn.completed", summary="turn completed"),
            ),
            progress_dropped=0,
            lines=2,
            json_events=2,
            duration_ms=1234,
        )

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
            log_path=f"/tmp/check-{inp.index}.log",
            log_url=f"file:///tmp/check-{inp.index}.log",
            output_tail="" if passed else "1 test failed",
        )

    @activity.defn(name="commit_and_push")
    async def commit_and_push(self, inp: CommitAndPushInput) -> CommitResult:
        self.s.calls.append("commit_and_push")
        changed = self.s.changed
        return CommitResult(
            changed=changed,
            reason=None if changed else "the agent made no changes",
            committed=changed,
            pushed=changed,
            branch=inp.branch,
            base_sha=inp.base_sha,
            commit_sha=HEAD_SHA if changed else None,
            diff_path="/tmp/diff.patch" if changed else None,
            diff_url="file:///tmp/diff.patch" if changed else None,
            files_changed=1 if changed else 0,
            insertions=3 if changed else 0,
            deletions=0,
        )

    @activity.defn(name="capture_diff")
    async def capture_diff(self, inp: CaptureDiffInput) -> DiffResult:
        self.s.calls.append("capture_diff")
        return DiffResult(
            changed=True,
            diff_path="/tmp/diff.patch",
            diff_url="file:///tmp/failed-diff.patch",
            files_changed=1,
            insertions=1,
            deletions=0,
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

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.prepare_workspace,
            self.run_agent,
            self.run_check,
            self.commit_and_push,
            self.capture_diff,
            self.open_pull_request,
        ]


class NoConvexPersistence:
    """STAND-IN persistence activities that write nothing: the no-Convex baseline of section 2.

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

    @activity.defn(name="update_run_status")
    async def update_run_status(self, update: RunStatusUpdate) -> RunStatusResult:
        return RunStatusResult(run_id=update.run_id, status=update.status, changed=True)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.record_run_start,
            self.upsert_step,
            self.add_artifact,
            self.append_event,
            self.update_run_status,
        ]
