"""CodexJobWorkflow: one Codex background job, from work order to pull request.

The flow: load the job (the order, its repository's entry, the worker's limits), record the
run, prepare the workspace, run the agent (which checkpoints its work to Convex storage), run
each check on that checkpoint, push it, open or update the pull request, notify the
repository's webhook, and only then record the run's final status.

Records: every step is one record that moves running -> succeeded | failed | canceled | skipped;
Convex writes the matching ``state_change`` event in the same transaction. Artifacts (the agent
log, the diff, the pull request) are recorded as they appear. These writes are activities
nothing waits for, on their own task queue (``records_task_queue``) so a slow Convex never
holds a job step's slot; all of them are awaited before the final status is written, so a
reader who sees ``succeeded``, ``failed`` or ``canceled`` sees every record of the run.

Workers: no step is bound to the worker that ran the step before it. Each workspace step gets
the ``WorkspaceState`` to rebuild the tree from (the repository plus the checkpoint bundle), so
a lost worker costs one heartbeat timeout and a retry of that step elsewhere.

Deterministic code only: time from ``workflow.now()``, idempotency keys from the workflow id,
the run id and a counter; no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.contract import MAX_EVENT_BATCH, MAX_ID_LENGTH
    from activities.job_loader import job_title
    from activities.jobs import JobActivities
    from activities.models import (
        PR_TITLE_LENGTH,
        AgentResult,
        CommitAndPushInput,
        HasStepRecord,
        JobSpec,
        LoadJobInput,
        OpenPullRequestInput,
        PrepareWorkspaceInput,
        RunAgentInput,
        RunCheckInput,
        StepRecord,
        StoredFile,
        WorkspaceState,
    )
    from activities.persistence import PersistenceActivities
    from activities.persistence_models import (
        ArtifactAdd,
        ArtifactType,
        EventAppend,
        EventBatch,
        EventType,
        RejectWorkOrder,
        RunStart,
        RunStatusUpdate,
        RunUsage,
        StepKind,
        StepStatus,
        StepUpdate,
    )
    from activities.webhook import WebhookInput
    from workflows.models import (
        CodexJobInput,
        CodexJobResult,
        JobProgress,
        JobStatus,
        records_task_queue,
    )
    from workflows.policies import (
        CONVEX_PATIENCE,
        JOB_RETRY,
        LOAD_JOB_RETRY,
        LOAD_JOB_START_TO_CLOSE,
        PERSISTENCE_RETRY,
        PERSISTENCE_START_TO_CLOSE,
        PULL_REQUEST_START_TO_CLOSE,
        WEBHOOK_RETRY,
        WEBHOOK_SCHEDULE_TO_CLOSE,
        WEBHOOK_START_TO_CLOSE,
        agent_start_to_close,
        check_start_to_close,
        git_start_to_close,
        heartbeat_timeout,
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
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT:
        return {
            "step": step,
            "type": "WorkerLost",
            "message": "the worker running the step stopped heartbeating, on every attempt",
        }
    error_type = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
    message = getattr(cause, "message", None) or str(cause)
    return {"step": step, "type": error_type or "Error", "message": str(message)[:2000]}


def invalid_input(step: str | None, exc: ValidationError) -> dict[str, Any]:
    """Why a step failed when its input or result did not validate: a failure, not a hang."""
    return {"step": step, "type": "InvalidInput", "message": str(exc)[:2000]}


@workflow.defn(name="CodexJobWorkflow", failure_exception_types=[ValidationError])
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
        self._agent: AgentResult | None = None

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
    async def run(self, request: CodexJobInput) -> CodexJobResult:
        info = workflow.info()
        self._work_order_id = request.work_order_id
        job = await self._load(request)
        self._run_id = await self._persist(
            PersistenceActivities.record_run_start,
            RunStart(
                workflow_request_id=job.work_order_id,
                temporal_workflow_id=info.workflow_id,
                temporal_run_id=info.run_id,
                task_queue=info.task_queue,
                repo=job.repo,
                branch=job.branch,
                started_at=self._now(),
            ),
        )
        self._status = "running"
        result = CodexJobResult(run_id=self._run_id, status="running", branch=job.branch)
        try:
            result = await self._job(job, result)
            result = result.model_copy(update={"status": "succeeded"})
        except StepFailed as failed:
            result = result.model_copy(update={"status": "failed", "failure_reason": failed.reason})
        except ValidationError as exc:  # an input the job could not build: a failure, not a hang
            reason = invalid_input(self._current_step, exc)
            result = result.model_copy(update={"status": "failed", "failure_reason": reason})
        except asyncio.CancelledError:
            await self._finish(job, result.model_copy(update={"status": "canceled"}))
            raise
        await self._finish(job, result)
        if result.status == "failed":
            reason = result.failure_reason or {}
            raise ApplicationError(
                f"job failed at {reason.get('step')}: {reason.get('message')}",
                reason,
                type="JobFailed",
                non_retryable=True,
            )
        return result

    async def _load(self, request: CodexJobInput) -> JobSpec:
        """The job, or (an order it cannot run) the order marked failed with the reason."""
        try:
            return await workflow.execute_activity_method(
                JobActivities.load_job,
                LoadJobInput(work_order_id=request.work_order_id),
                start_to_close_timeout=LOAD_JOB_START_TO_CLOSE,
                schedule_to_close_timeout=CONVEX_PATIENCE,
                retry_policy=LOAD_JOB_RETRY,
            )
        except ActivityError as err:
            reason = failure_reason("load_job", err)
            self._status = "failed"
            await self._persist(
                PersistenceActivities.reject_work_order,
                RejectWorkOrder(
                    workflow_request_id=request.work_order_id, reason=reason["message"]
                ),
            )
            raise ApplicationError(
                f"work order {request.work_order_id} cannot run: {reason['message']}",
                reason,
                type=reason["type"],
                non_retryable=True,
            ) from None

    async def _job(self, job: JobSpec, result: CodexJobResult) -> CodexJobResult:
        ws = await self._step(
            step_name(JobActivities.prepare_workspace),
            "activity",
            lambda: workflow.execute_activity_method(
                JobActivities.prepare_workspace,
                PrepareWorkspaceInput(job=job),
                start_to_close_timeout=git_start_to_close(job.limits),
                heartbeat_timeout=heartbeat_timeout(job.limits),
                retry_policy=JOB_RETRY,
            ),
        )
        assert self._run_id is not None
        agent = await self._step(
            step_name(JobActivities.run_agent),
            "activity",
            lambda: self._on_workspace(
                JobActivities.run_agent,
                RunAgentInput(
                    state=ws.state,
                    prompt=job.agent_prompt(),
                    message=job.commit_message(),
                    committed_at_ms=int(workflow.now().timestamp() * 1000),
                    run_id=self._run_id or "",
                    limits=job.limits,
                    network=job.network.agent,
                ),
                start_to_close=agent_start_to_close(job.limits),
                job=job,
            ),
            on_result=self._record_agent_output,
        )
        state = agent.checkpoint
        result = result.model_copy(
            update={"commit_sha": state.commit_sha if state.changed else None}
        )
        for index, command in enumerate(job.checks, start=1):
            await self._check(job, state, index, command)
        commit = await self._step(
            step_name(JobActivities.commit_and_push),
            "activity",
            lambda: self._on_workspace(
                JobActivities.commit_and_push,
                CommitAndPushInput(state=state, remote_branch_sha=ws.remote_branch_sha),
                start_to_close=git_start_to_close(job.limits),
                job=job,
            ),
        )
        if not commit.changed:
            self._event("comment", {"message": f"nothing to commit: {commit.reason}"})
            self._skip(step_name(JobActivities.open_pull_request), "nothing to commit")
            return result
        pr = await self._step(
            step_name(JobActivities.open_pull_request),
            "activity",
            lambda: workflow.execute_activity_method(
                JobActivities.open_pull_request,
                OpenPullRequestInput(
                    repo=job.repo,
                    branch=job.branch,
                    base_branch=ws.base_branch,
                    title=self._pull_request_title(job),
                    body=self._pull_request_body(job),
                ),
                start_to_close_timeout=PULL_REQUEST_START_TO_CLOSE,
                retry_policy=JOB_RETRY,
            ),
        )
        if pr.skipped or pr.url is None:
            self._event("system", {"message": f"pull request skipped: {pr.reason}"})
            return result
        self._artifact("pr", f"pull request #{pr.number}", "pr", url=pr.url)
        return result.model_copy(update={"pr_url": pr.url, "pr_number": pr.number})

    async def _check(self, job: JobSpec, state: WorkspaceState, index: int, command: str) -> None:
        await self._step(
            f"check {index}: {command}"[:MAX_ID_LENGTH],
            "check",
            lambda: self._on_workspace(
                JobActivities.run_check,
                RunCheckInput(
                    state=state,
                    command=command,
                    index=index,
                    timeout_seconds=job.limits.check_timeout_seconds,
                    network=job.network.checks,
                ),
                start_to_close=check_start_to_close(job.limits),
                job=job,
            ),
        )

    def _record_agent_output(self, agent: AgentResult) -> None:
        """The agent's log and diff artifacts and any progress it could not write live."""
        self._agent = agent
        if agent.log is not None:
            self._artifact("log", "agent log", "agent-log", stored=agent.log)
        if agent.diff is not None:
            label = (
                "diff against the base branch" if agent.succeeded else "diff of the failed attempt"
            )
            self._artifact("diff", label, "diff", stored=agent.diff)
        if self._run_id is None:
            return
        pending = agent.pending_events  # up to a whole attempt's progress, in batches
        for start in range(0, len(pending), MAX_EVENT_BATCH):
            batch = EventBatch(
                run_id=self._run_id,
                workflow_request_id=self._work_order_id,
                events=pending[start : start + MAX_EVENT_BATCH],
            )
            self._in_background(PersistenceActivities.append_events, batch)

    @staticmethod
    def _pull_request_title(job: JobSpec) -> str:
        """A follow-up's pull request is titled after the first request, with a count."""
        if not job.conversation:
            return job.title[:PR_TITLE_LENGTH]
        first = job_title(job.conversation[0].prompt)
        more = len(job.conversation)
        suffix = f" (+{more} follow-up{'s' if more > 1 else ''})"
        return first[: PR_TITLE_LENGTH - len(suffix)] + suffix

    @staticmethod
    def _pull_request_body(job: JobSpec) -> str:
        """The pull request describes the whole change: every request of the conversation."""
        if not job.conversation:
            return job.prompt[:60_000]
        requests = [exchange.prompt for exchange in job.conversation] + [job.prompt]
        lines = ["This branch holds the work of these requests, in order:", ""]
        lines += [f"{n}. {text.strip()}" for n, text in enumerate(requests, start=1)]
        return "\n".join(lines)[:60_000]

    def _on_workspace(
        self,
        activity: JobActivity[A, T],
        arg: A,
        *,
        start_to_close: timedelta,
        job: JobSpec,
    ) -> Awaitable[T]:
        """A job activity that rebuilds the workspace from its state on whichever worker
        takes it; a worker lost mid-step is noticed within the heartbeat timeout."""
        return workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=start_to_close,
            heartbeat_timeout=heartbeat_timeout(job.limits),
            retry_policy=JOB_RETRY,
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
        try:
            value = await call()
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # The job was cancelled and the activity has stopped (its process is killed).
                self._end_step(name, kind, started, StepRecord(status="canceled"))
                raise asyncio.CancelledError() from err
            reason = failure_reason(name, err)
            failed = StepRecord(status="failed", payload={"error": reason})
            self._end_step(name, kind, started, failed)
            raise StepFailed(reason) from err
        except asyncio.CancelledError:
            self._end_step(name, kind, started, StepRecord(status="canceled"))
            raise
        except ValidationError as exc:  # an input the step could not build
            self._fail_invalid(name, kind, started, exc)
        try:
            if on_result is not None:
                on_result(value)
            record = value.step_record()
        except ValidationError as exc:  # a result that cannot be recorded as it is
            self._fail_invalid(name, kind, started, exc)
        self._end_step(name, kind, started, record)
        if record.status == "failed":
            payload = record.payload or {}
            message = payload.get("message") or f"{name} failed"
            raise StepFailed(
                {"step": name, "type": payload.get("type") or "StepFailed", **payload}
                | {"message": message}
            )
        return value

    def _fail_invalid(
        self, name: str, kind: StepKind, started: float, exc: ValidationError
    ) -> NoReturn:
        """A validation error inside a step ends the step failed, like any step failure, so
        no step is left ``running`` in Convex."""
        reason = invalid_input(name, exc)
        self._end_step(name, kind, started, StepRecord(status="failed", payload={"error": reason}))
        raise StepFailed(reason) from exc

    def _end_step(self, name: str, kind: StepKind, started: float, record: StepRecord) -> None:
        self._write_step(
            name,
            kind,
            record.status,
            started_at=started,
            ended_at=self._now(),
            payload=record.payload,
            log_storage_id=record.log_storage_id,
            checkpoint_storage_id=record.checkpoint_storage_id,
            attempts=record.attempts,
        )
        self._steps_done.append(name)
        self._current_step = None

    def _skip(self, name: str, reason: str) -> None:
        now = self._now()
        self._write_step(
            name, "activity", "skipped", started_at=now, ended_at=now, payload={"reason": reason}
        )

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
            task_queue=records_task_queue(workflow.info().task_queue),
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

    def _artifact(
        self,
        type_: ArtifactType,
        label: str,
        name: str,
        *,
        url: str | None = None,
        stored: StoredFile | None = None,
    ) -> None:
        assert self._run_id is not None
        artifact = ArtifactAdd(
            run_id=self._run_id,
            type=type_,
            url=url,
            storage_id=stored.storage_id if stored is not None else None,
            label=label,
            idempotency_key=self._key(f"artifact/{name}"),
            created_at=self._now(),
        )
        self._in_background(PersistenceActivities.add_artifact, artifact)

    async def _notify(self, job: JobSpec, result: CodexJobResult) -> None:
        """The repository's webhook hears how the run ended; the outcome is an event."""
        if job.webhook_url is None or self._run_id is None:
            return
        info = workflow.info()
        payload: dict[str, object] = {
            "event": "run.finished",
            "workOrderId": job.work_order_id,
            "runId": self._run_id,
            "status": result.status,
            "repo": job.repo,
            "branch": job.branch,
            "commitSha": result.commit_sha,
            "prUrl": result.pr_url,
            "failureReason": result.failure_reason,
        }
        try:
            delivered = await workflow.execute_activity_method(
                JobActivities.notify,
                WebhookInput(
                    url=job.webhook_url,
                    delivery_id=f"{info.workflow_id}/{info.run_id}",
                    payload=payload,
                ),
                start_to_close_timeout=WEBHOOK_START_TO_CLOSE,
                schedule_to_close_timeout=WEBHOOK_SCHEDULE_TO_CLOSE,
                retry_policy=WEBHOOK_RETRY,
            )
            message = f"webhook notified ({delivered.status})"
        except ActivityError as err:
            message = f"webhook not notified: {failure_reason('notify', err)['message']}"
        self._event("system", {"message": message, "webhook": True})

    async def _finish(self, job: JobSpec, result: CodexJobResult) -> None:
        """Wait for every record still in flight, then record the final status: a reader who
        sees the run ended sees all of its records."""
        assert self._run_id is not None
        self._status = result.status
        if result.status != "canceled":
            await self._notify(job, result)
        outcomes = await asyncio.gather(*self._writes, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            result = result.model_copy(
                update={
                    "status": "failed",
                    "failure_reason": {
                        "step": "records",
                        "type": "PersistenceFailed",
                        "message": f"{len(errors)} Convex record(s) could not be written;"
                        f" first: {errors[0]}"[:2000],
                    },
                }
            )
        agent = self._agent
        usage = agent.usage if agent is not None else None
        await self._persist(
            PersistenceActivities.update_run_status,
            RunStatusUpdate(
                run_id=self._run_id,
                status=result.status,
                ended_at=self._now(),
                failure_reason=result.failure_reason,
                pr_url=result.pr_url,
                commit_sha=result.commit_sha,
                usage=RunUsage(**usage.model_dump()) if usage is not None else None,
                agent_ms=agent.agent_ms if agent is not None else None,
                final_message=agent.final_message if agent is not None else None,
            ),
        )
        if errors:
            raise ApplicationError(
                f"{len(errors)} Convex record(s) could not be written; first: {errors[0]}",
                type="PersistenceFailed",
                non_retryable=True,
            )
