"""CodexJobWorkflow: one Codex background job, from work order to pull request.

The flow: record the run, prepare the workspace, run the agent, run each check, commit and push,
open the pull request, record the final status. Every step is bracketed by a step record and
``state_change`` events; artifacts (agent log, diff, PR) are recorded as they appear. Those
Convex writes are activities nothing waits for: they run beside the work and are all awaited
before the workflow completes. Only ``record_run_start`` is awaited at once, because every later
record needs the run id. Reordered or repeated writes are harmless: Convex deduplicates them by
key and never moves a status backwards.

The workspace lives on the worker that prepared it, so the activities that use it go to that
worker's own task queue (``Workspace.task_queue``).

Deterministic code only: time from ``workflow.now()``, idempotency keys from the workflow id,
the run id and a counter; no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from activities.contract import MAX_ID_LENGTH
    from activities.jobs import JobActivities
    from activities.models import (
        PR_TITLE_LENGTH,
        AgentResult,
        CaptureDiffInput,
        CommitAndPushInput,
        HasStepRecord,
        OpenPullRequestInput,
        PrepareWorkspaceInput,
        RunAgentInput,
        RunCheckInput,
        StepRecord,
        Workspace,
    )
    from activities.persistence import PersistenceActivities
    from activities.persistence_models import (
        ArtifactAdd,
        ArtifactType,
        EventAppend,
        EventType,
        RunStart,
        RunStatusUpdate,
        StepKind,
        StepStatus,
        StepUpdate,
    )
    from workflows.models import CodexJobInput, CodexJobResult, JobProgress, JobStatus
    from workflows.policies import (
        AGENT_RETRY,
        CAPTURE_DIFF_START_TO_CLOSE,
        CONVEX_PATIENCE,
        HEARTBEAT_TIMEOUT,
        JOB_RETRY,
        PERSISTENCE_RETRY,
        PERSISTENCE_START_TO_CLOSE,
        PULL_REQUEST_START_TO_CLOSE,
        WORKSPACE_SCHEDULE_TO_START,
        agent_start_to_close,
        check_start_to_close,
        git_start_to_close,
    )

A = TypeVar("A")
T = TypeVar("T")
R = TypeVar("R", bound=HasStepRecord)
JobActivity = Callable[[JobActivities, A], Awaitable[T]]
"""A job activity by reference (``JobActivities.run_agent``): typed input and result."""
PersistenceActivity = Callable[[PersistenceActivities, A], Awaitable[T]]
"""A persistence activity by reference (``PersistenceActivities.upsert_step``)."""


def step_name(activity: Callable[..., Any]) -> str:
    """The name a step is recorded under: the method name of the activity that does it (also
    its registered activity name), so the timeline reads like the code."""
    return activity.__name__


class StepFailed(Exception):
    """A job step ended in failure; carries the structured reason recorded on the run."""

    def __init__(self, reason: dict[str, Any]) -> None:
        super().__init__(reason.get("message", "step failed"))
        self.reason = reason


def failure_reason(step: str, err: BaseException) -> dict[str, Any]:
    """A JSON-friendly description of why a step failed, from Temporal's error chain."""
    cause: BaseException = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
        return {
            "step": step,
            "type": "WorkerLost",
            "message": "the worker holding the workspace did not pick the step up in time",
        }
    error_type = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
    message = getattr(cause, "message", None) or str(cause)
    return {"step": step, "type": error_type or "Error", "message": str(message)[:2000]}


@workflow.defn(name="CodexJobWorkflow")
class CodexJobWorkflow:
    """Runs one work order as a Codex job and records it in Convex."""

    def __init__(self) -> None:
        self._status: JobStatus = "queued"
        self._current_step: str | None = None
        self._run_id: str | None = None
        self._work_order_id = ""
        self._steps_done: list[str] = []
        self._writes: list[asyncio.Task[Any]] = []
        self._event_seq = 0
        self._clock = 0.0

    @workflow.query
    def progress(self) -> JobProgress:
        """The job's status and current step, for the CLI and the UI."""
        return JobProgress(
            status=self._status,
            current_step=self._current_step,
            run_id=self._run_id,
            steps_done=list(self._steps_done),
        )

    # ----- the job --------------------------------------------------------------------------
    @workflow.run
    async def run(self, job: CodexJobInput) -> CodexJobResult:
        info = workflow.info()
        self._work_order_id = job.work_order_id
        branch = job.branch_hint or f"codex/{job.work_order_id}"
        self._run_id = await self._persist(
            PersistenceActivities.record_run_start,
            RunStart(
                workflow_request_id=job.work_order_id,
                temporal_workflow_id=info.workflow_id,
                temporal_run_id=info.run_id,
                task_queue=info.task_queue,
                repo=job.repo,
                branch=branch,
                started_at=self._now(),
            ),
        )
        self._status = "running"
        self._event("state_change", {"status": "running", "branch": branch})
        result = CodexJobResult(run_id=self._run_id, status="running", branch=branch)
        try:
            result = await self._job(job, branch, result)
            result = result.model_copy(update={"status": "succeeded"})
        except StepFailed as failed:
            result = result.model_copy(update={"status": "failed", "failure_reason": failed.reason})
        except asyncio.CancelledError:
            await self._finish(result.model_copy(update={"status": "canceled"}))
            raise
        await self._finish(result)
        if result.status == "failed":
            reason = result.failure_reason or {}
            raise ApplicationError(
                f"job failed at {reason.get('step')}: {reason.get('message')}",
                reason,
                type="JobFailed",
                non_retryable=True,
            )
        return result

    async def _job(self, job: CodexJobInput, branch: str, result: CodexJobResult) -> CodexJobResult:
        ws = await self._step(
            step_name(JobActivities.prepare_workspace),
            "activity",
            lambda: workflow.execute_activity_method(
                JobActivities.prepare_workspace,
                PrepareWorkspaceInput(
                    work_order_id=job.work_order_id,
                    repo=job.repo,
                    base_branch=job.base_branch,
                    branch=branch,
                ),
                start_to_close_timeout=git_start_to_close(job.limits),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=JOB_RETRY,
            ),
        )
        try:
            await self._step(
                step_name(JobActivities.run_agent),
                "activity",
                lambda: self._on_workspace(
                    ws,
                    JobActivities.run_agent,
                    RunAgentInput(
                        workspace=ws.path,
                        prompt=job.prompt,
                        timeout_seconds=job.limits.agent_timeout_seconds,
                    ),
                    start_to_close=agent_start_to_close(job.limits),
                    retry=AGENT_RETRY,
                ),
                on_result=self._record_agent_output,
            )
            for index, command in enumerate(job.checks, start=1):
                await self._check(ws, job, index, command)
        except StepFailed:
            await self._capture_diff(ws)
            raise
        commit = await self._step(
            step_name(JobActivities.commit_and_push),
            "activity",
            lambda: self._on_workspace(
                ws,
                JobActivities.commit_and_push,
                CommitAndPushInput(
                    workspace=ws.path,
                    repo=job.repo,
                    branch=ws.branch,
                    base_sha=ws.base_sha,
                    message=f"{job.title}\n\n{job.prompt}"[:20_000],
                ),
                start_to_close=git_start_to_close(job.limits),
                retry=JOB_RETRY,
            ),
        )
        if not commit.changed:
            self._event("comment", {"message": f"nothing to commit: {commit.reason}"})
            self._skip(step_name(JobActivities.open_pull_request), "nothing to commit")
            return result
        if commit.diff_url:
            self._artifact("diff", commit.diff_url, "diff against the base branch", "diff")
        result = result.model_copy(update={"commit_sha": commit.commit_sha})
        pr = await self._step(
            step_name(JobActivities.open_pull_request),
            "activity",
            lambda: workflow.execute_activity_method(
                JobActivities.open_pull_request,
                OpenPullRequestInput(
                    repo=job.repo,
                    branch=ws.branch,
                    base_branch=ws.base_branch,
                    title=job.title[:PR_TITLE_LENGTH],
                    body=job.prompt[:60_000],
                ),
                start_to_close_timeout=PULL_REQUEST_START_TO_CLOSE,
                retry_policy=JOB_RETRY,
            ),
        )
        if pr.skipped or pr.url is None:
            self._event("system", {"message": f"pull request skipped: {pr.reason}"})
            return result
        self._artifact("pr", pr.url, f"pull request #{pr.number}", "pr")
        return result.model_copy(update={"pr_url": pr.url})

    async def _check(self, ws: Workspace, job: CodexJobInput, index: int, command: str) -> None:
        await self._step(
            f"check {index}: {command}"[:MAX_ID_LENGTH],
            "check",
            lambda: self._on_workspace(
                ws,
                JobActivities.run_check,
                RunCheckInput(
                    workspace=ws.path,
                    command=command,
                    index=index,
                    timeout_seconds=job.limits.check_timeout_seconds,
                ),
                start_to_close=check_start_to_close(job.limits),
                retry=JOB_RETRY,
            ),
        )

    def _record_agent_output(self, agent: AgentResult) -> None:
        """The agent's log artifact and its progress summaries, beside its step record."""
        self._artifact("log", agent.log_url, "agent log", "agent-log")
        for item in agent.progress:
            self._event("system", {"agent": item.model_dump(mode="json")})

    async def _capture_diff(self, ws: Workspace) -> None:
        """After a failure, still record what the agent changed (a record, not a step)."""
        try:
            diff = await self._on_workspace(
                ws,
                JobActivities.capture_diff,
                CaptureDiffInput(workspace=ws.path, base_sha=ws.base_sha),
                start_to_close=CAPTURE_DIFF_START_TO_CLOSE,
                retry=JOB_RETRY,
            )
        except ActivityError as err:
            self._event("system", {"message": f"diff not captured: {failure_reason('diff', err)}"})
            return
        if diff.changed:
            self._artifact("diff", diff.diff_url, "diff of the failed attempt", "diff")

    def _on_workspace(
        self,
        ws: Workspace,
        activity: JobActivity[A, T],
        arg: A,
        *,
        start_to_close: timedelta,
        retry: RetryPolicy,
    ) -> Awaitable[T]:
        """A job activity that needs the workspace, sent to the worker that holds it."""
        return workflow.execute_activity_method(
            activity,
            arg,
            task_queue=ws.task_queue or workflow.info().task_queue,
            schedule_to_start_timeout=WORKSPACE_SCHEDULE_TO_START if ws.task_queue else None,
            start_to_close_timeout=start_to_close,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=retry,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    # ----- steps ----------------------------------------------------------------------------
    async def _step(
        self,
        name: str,
        kind: StepKind,
        call: Callable[[], Awaitable[R]],
        *,
        on_result: Callable[[R], None] | None = None,
    ) -> R:
        """Run one step: record it running, run it, record how it ended (the result's own
        ``step_record()``); a failure stops the job. ``on_result`` records what else the
        result carries (artifacts, events) before the step's end is recorded."""
        started = self._now()
        self._current_step = name
        self._write_step(name, kind, "running", started_at=started)
        self._event("state_change", {"step": name, "status": "running"})
        try:
            value = await call()
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # The job was cancelled and the activity has stopped (its process is killed).
                self._end_step(name, kind, started, StepRecord(status="canceled"))
                raise asyncio.CancelledError() from err
            reason = failure_reason(name, err)
            self._end_step(
                name, kind, started, StepRecord(status="failed", payload={"error": reason})
            )
            raise StepFailed(reason) from err
        except asyncio.CancelledError:
            self._end_step(name, kind, started, StepRecord(status="canceled"))
            raise
        if on_result is not None:
            on_result(value)
        record = value.step_record()
        self._end_step(name, kind, started, record)
        if record.status == "failed":
            payload = record.payload or {}
            message = payload.get("message") or f"{name} failed"
            raise StepFailed({"step": name, "type": "StepFailed", **payload, "message": message})
        return value

    def _end_step(self, name: str, kind: StepKind, started: float, record: StepRecord) -> None:
        self._write_step(
            name,
            kind,
            record.status,
            started_at=started,
            ended_at=self._now(),
            payload=record.payload,
            log_url=record.log_url,
        )
        self._event("state_change", {"step": name, "status": record.status})
        self._steps_done.append(name)
        self._current_step = None

    def _skip(self, name: str, reason: str) -> None:
        now = self._now()
        self._write_step(
            name, "activity", "skipped", started_at=now, ended_at=now, payload={"reason": reason}
        )
        self._event("state_change", {"step": name, "status": "skipped", "reason": reason})

    # ----- records: persistence activities, beside the work ----------------------------------
    def _now(self) -> float:
        """Workflow time in ms, made strictly increasing within the run (a logical clock).

        Several records are often made in the same millisecond, and their writes run
        concurrently; bumping ties by 1 ms lets Convex order a run's steps and events exactly
        as the workflow made them.
        """
        self._clock = max(float(int(workflow.now().timestamp() * 1000)), self._clock + 1)
        return self._clock

    async def _persist(self, activity: PersistenceActivity[A, T], arg: A) -> T:
        return await workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=PERSISTENCE_START_TO_CLOSE,
            schedule_to_close_timeout=CONVEX_PATIENCE,
            retry_policy=PERSISTENCE_RETRY,
        )

    def _in_background(self, activity: PersistenceActivity[A, Any], arg: A) -> None:
        self._writes.append(asyncio.create_task(self._persist(activity, arg)))

    def _key(self, suffix: str) -> str:
        info = workflow.info()
        return f"{info.workflow_id}/{info.run_id}/{suffix}"

    def _write_step(self, name: str, kind: StepKind, status: StepStatus, **fields: Any) -> None:
        assert self._run_id is not None
        update = StepUpdate(run_id=self._run_id, name=name, kind=kind, status=status, **fields)
        self._in_background(PersistenceActivities.upsert_step, update)

    def _event(self, type_: EventType, data: dict[str, Any]) -> None:
        assert self._run_id is not None
        self._event_seq += 1
        event = EventAppend(
            run_id=self._run_id,
            workflow_request_id=self._work_order_id,
            type=type_,
            data=data,
            idempotency_key=self._key(f"event/{self._event_seq}"),
            created_at=self._now(),
        )
        self._in_background(PersistenceActivities.append_event, event)

    def _artifact(self, type_: ArtifactType, url: str, label: str, name: str) -> None:
        assert self._run_id is not None
        artifact = ArtifactAdd(
            run_id=self._run_id,
            type=type_,
            url=url,
            label=label,
            idempotency_key=self._key(f"artifact/{name}"),
            created_at=self._now(),
        )
        self._in_background(PersistenceActivities.add_artifact, artifact)

    async def _finish(self, result: CodexJobResult) -> None:
        """Record the final status, then wait for every record still in flight."""
        assert self._run_id is not None
        self._status = result.status
        data: dict[str, Any] = {"status": result.status}
        if result.failure_reason:
            data["reason"] = result.failure_reason
        self._event("state_change", data)
        self._in_background(
            PersistenceActivities.update_run_status,
            RunStatusUpdate(
                run_id=self._run_id,
                status=result.status,
                ended_at=self._now(),
                failure_reason=result.failure_reason,
                pr_url=result.pr_url,
                commit_sha=result.commit_sha,
            ),
        )
        outcomes = await asyncio.gather(*self._writes, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise ApplicationError(
                f"{len(errors)} Convex record(s) could not be written; first: {errors[0]}",
                type="PersistenceFailed",
                non_retryable=True,
            )
