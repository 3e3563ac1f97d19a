"""CodexJobWorkflow on the time-skipping server: job activities stood in for by name, records
written by the REAL persistence activities into the local Convex backend and read back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from activities.contract import MAX_EVENT_BATCH
from activities.convex_client import ConvexClient
from activities.persistence import PersistenceActivities
from activities.storage import FileStore
from tests.workflows.conftest import MakeWorkOrder, running_worker
from tests.workflows.fakes import HEAD_SHA, FlakyPersistence, Scenario, StandinJobActivities
from workflows.codex_job import CodexJobWorkflow
from workflows.models import CodexJobInput, CodexJobResult


async def timeline(convex: ConvexClient, run_id: str) -> dict[str, Any]:
    page = await convex.query("runs:getTimelineAsOperator", {"runId": run_id, "limit": 500})
    assert page["isDone"]
    return dict(page)


def activities(
    convex: ConvexClient, scenario: Scenario, persistence: Any = None
) -> tuple[list[Any], list[Any]]:
    records = persistence or PersistenceActivities(convex, worker_id="test-worker")
    jobs = StandinJobActivities(scenario, files=FileStore(convex))
    return jobs.all(), records.all()


async def run_job(
    env: WorkflowEnvironment,
    convex: ConvexClient,
    job: CodexJobInput,
    scenario: Scenario,
    persistence: Any = None,
) -> tuple[CodexJobResult | BaseException, dict[str, Any] | None]:
    jobs, records = activities(convex, scenario, persistence)
    async with running_worker(env, jobs, records) as queue:
        try:
            outcome: CodexJobResult | BaseException = await env.client.execute_workflow(
                CodexJobWorkflow.run, job, id=f"work-order-{job.work_order_id}", task_queue=queue
            )
        except WorkflowFailureError as exc:
            outcome = exc
    run = await convex.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": job.work_order_id}
    )
    return outcome, (await timeline(convex, run["_id"]) if run is not None else None)


def step_states(tl: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in tl["steps"]]


def event_keys(tl: dict[str, Any]) -> list[str]:
    return [e["idempotencyKey"] for e in tl["events"]]


def state_events(tl: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["data"] for e in tl["events"] if e["type"] == "state_change"]


async def test_success_records_every_step_artifact_and_the_pr(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(checks=("make lint", "pytest -q"))
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, CodexJobResult)
    assert tl is not None
    assert result.status == "succeeded"
    assert result.pr_url == "https://github.example/acme/app/pull/7"
    assert scenario.calls == [
        "load_job", "prepare_workspace", "run_agent", "run_check 1", "run_check 2",
        "commit_and_push", "open_pull_request",
    ]  # fmt: skip
    assert step_states(tl) == [
        ("prepare_workspace", "succeeded"),
        ("run_agent", "succeeded"),
        ("check 1: make lint", "succeeded"),
        ("check 2: pytest -q", "succeeded"),
        ("commit_and_push", "succeeded"),
        ("open_pull_request", "succeeded"),
    ]
    assert [s["kind"] for s in tl["steps"]][2:4] == ["check", "check"]
    # Logs are files in Convex storage: each step's logUrl is where Convex serves it.
    assert tl["steps"][2]["logUrl"].startswith(convex_client.url + "/api/storage/")
    assert sorted(a["type"] for a in tl["artifacts"]) == ["diff", "log", "pr"]
    assert all(a.get("storageId") for a in tl["artifacts"] if a["type"] != "pr")
    run = tl["run"]
    assert run["status"] == "succeeded"
    assert run["prUrl"] == result.pr_url
    assert run["commitSha"] == HEAD_SHA
    assert (run["inputTokens"], run["outputTokens"], run["agentMs"]) == (100, 42, 1234)
    assert run["endedAt"] >= run["startedAt"]
    assert tl["workOrder"]["status"] == "succeeded"
    keys = event_keys(tl)
    assert len(keys) == len(set(keys))
    agent_events = [e for e in tl["events"] if "agent" in (e.get("data") or {})]
    assert [e["data"]["agent"]["type"] for e in agent_events] == [
        "thread.started",
        "turn.completed",
    ]
    # Each transition has its event, written with it; the run's final one is the last event.
    states = state_events(tl)
    assert {"step": "run_agent", "status": "running"} in states
    assert {"step": "run_agent", "status": "succeeded"} in states
    assert tl["events"][-1]["data"] == {"status": "succeeded"}


async def test_agent_failure_fails_the_run_and_still_records_log_and_diff(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(agent_exit=3, checks=("make lint",))
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, WorkflowFailureError) and tl is not None
    assert isinstance(result.cause, ApplicationError) and result.cause.type == "JobFailed"
    assert scenario.calls == ["load_job", "prepare_workspace", "run_agent"]
    assert step_states(tl) == [("prepare_workspace", "succeeded"), ("run_agent", "failed")]
    reason = tl["run"]["failureReason"]
    assert (reason["step"], reason["type"]) == ("run_agent", "AgentFailed")
    assert "code 3" in reason["message"]
    assert tl["run"]["status"] == "failed"
    assert tl["workOrder"]["status"] == "failed"
    assert [a["type"] for a in tl["artifacts"]] == ["log"]


async def test_failing_check_fails_the_run_at_that_check(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(failing_check=2, checks=("make lint", "pytest -q", "never run"))
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, WorkflowFailureError) and tl is not None
    assert "commit_and_push" not in scenario.calls
    assert step_states(tl)[-2:] == [
        ("check 1: make lint", "succeeded"),
        ("check 2: pytest -q", "failed"),
    ]
    failed = tl["steps"][-1]
    assert failed["logUrl"].startswith(convex_client.url)
    assert failed["payload"]["exitCode"] == 1
    assert tl["run"]["failureReason"]["step"] == "check 2: pytest -q"
    assert {a["type"] for a in tl["artifacts"]} == {"log", "diff"}


async def test_nothing_to_commit_succeeds_without_a_pull_request(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(changed=False)
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, CodexJobResult) and result.status == "succeeded"
    assert tl is not None
    assert result.pr_url is None and result.commit_sha is None
    assert "open_pull_request" not in scenario.calls
    assert step_states(tl)[-2:] == [
        ("commit_and_push", "succeeded"),
        ("open_pull_request", "skipped"),
    ]
    assert tl["steps"][-2]["payload"]["changed"] is False
    comments = [e["data"]["message"] for e in tl["events"] if e["type"] == "comment"]
    assert comments == ["nothing to commit: the agent made no changes"]
    assert {"step": "open_pull_request", "status": "skipped", "reason": "nothing to commit"} in (
        state_events(tl)
    )
    assert [a["type"] for a in tl["artifacts"]] == ["log"]


async def test_pull_request_skipped_is_recorded_with_its_reason(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    result, tl = await run_job(time_skipping_env, convex_client, job, Scenario(pr_skipped=True))

    assert isinstance(result, CodexJobResult) and result.status == "succeeded"
    assert tl is not None
    assert step_states(tl)[-1] == ("open_pull_request", "skipped")
    assert tl["steps"][-1]["payload"] == {"reason": "no GITHUB_TOKEN is set"}
    messages = [e["data"].get("message") for e in tl["events"] if e["type"] == "system"]
    assert "pull request skipped: no GITHUB_TOKEN is set" in messages


async def test_bad_repository_fails_at_prepare_without_retrying(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(prepare_error="repository not found")
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, WorkflowFailureError) and tl is not None
    assert scenario.calls == ["load_job", "prepare_workspace"]
    assert tl["run"]["failureReason"]["type"] == "RepositoryNotFound"
    assert step_states(tl) == [("prepare_workspace", "failed")]


async def test_an_order_the_job_cannot_run_ends_failed_with_its_reason(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    """No input may leave a job hanging: load_job's refusal fails the order at once."""
    job = await make_work_order()
    scenario = Scenario(invalid_order="branch: contains '..'")
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, WorkflowFailureError)
    assert isinstance(result.cause, ApplicationError)
    assert result.cause.type == "InvalidWorkOrder" and result.cause.non_retryable
    assert tl is None  # no run was started
    order = await convex_client.query(
        "workOrders:getAsOperator", {"workflowRequestId": job.work_order_id}
    )
    assert order["status"] == "failed"
    assert "contains '..'" in order["failureReason"]


async def test_cancellation_during_the_agent_cancels_the_run(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(agent_hangs=True)
    jobs, records = activities(convex_client, scenario)
    async with running_worker(time_skipping_env, jobs, records) as queue:
        handle = await time_skipping_env.client.start_workflow(
            CodexJobWorkflow.run, job, id=f"work-order-{job.work_order_id}", task_queue=queue
        )
        await asyncio.wait_for(scenario.agent_started.wait(), 10)
        progress = await handle.query(CodexJobWorkflow.progress)
        assert progress.current_step == "run_agent"
        assert progress.status == "running"
        assert progress.steps_done == ["prepare_workspace"]
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert scenario.agent_cancelled.is_set(), "the agent activity was not cancelled"
    assert "commit_and_push" not in scenario.calls
    run = await convex_client.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": job.work_order_id}
    )
    tl = await timeline(convex_client, run["_id"])
    assert tl["run"]["status"] == "canceled"
    assert tl["workOrder"]["status"] == "canceled"
    assert step_states(tl) == [("prepare_workspace", "succeeded"), ("run_agent", "canceled")]
    assert tl["events"][-1]["data"] == {"status": "canceled"}


async def test_convex_failing_then_recovering_still_records_everything_once(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    steady_job = await make_work_order()
    _, steady = await run_job(
        time_skipping_env, convex_client, steady_job, Scenario(checks=("make lint",))
    )

    job = await make_work_order()
    flaky = FlakyPersistence(
        PersistenceActivities(convex_client, worker_id="test-worker"), failures=2
    )
    result, tl = await run_job(
        time_skipping_env, convex_client, job, Scenario(checks=("make lint",)), flaky
    )

    assert isinstance(result, CodexJobResult) and result.status == "succeeded"
    assert tl is not None and steady is not None
    assert flaky.calls > 10, "the injected failures did not happen"
    assert all(n >= 3 for n in flaky.attempts.values())
    # The same records as an undisturbed run: each step, artifact and event exactly once.
    assert step_states(tl) == step_states(steady)
    assert len(tl["artifacts"]) == len(steady["artifacts"]) == 3
    assert len(tl["events"]) == len(steady["events"])
    keys = event_keys(tl)
    assert len(keys) == len(set(keys))
    runs = await convex_client.query("runs:listAll", {"limit": 100})
    assert sum(1 for r in runs if r["workflowRequestId"] == job.work_order_id) == 1


async def test_an_agent_backlog_larger_than_one_batch_is_recorded_in_full(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    """An agent that could write none of its progress live (Convex down the whole run) leaves
    more events than one events:appendBatch call takes: the job still succeeds with all of them."""
    job = await make_work_order()
    scenario = Scenario(agent_events=MAX_EVENT_BATCH * 2 + 1)
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, CodexJobResult) and result.status == "succeeded"
    assert tl is not None
    agent_events = [e for e in tl["events"] if "agent" in (e.get("data") or {})]
    seqs = sorted(int(e["data"]["agent"]["seq"]) for e in agent_events)
    assert seqs == list(range(MAX_EVENT_BATCH * 2 + 1))  # every one, once


async def test_a_step_result_that_cannot_be_recorded_ends_the_step_and_the_run_failed(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    job = await make_work_order()
    scenario = Scenario(agent_log_id_too_long=True)
    result, tl = await run_job(time_skipping_env, convex_client, job, scenario)

    assert isinstance(result, WorkflowFailureError)
    assert tl is not None
    assert step_states(tl) == [("prepare_workspace", "succeeded"), ("run_agent", "failed")]
    reason = tl["run"]["failureReason"]
    assert (reason["step"], reason["type"]) == ("run_agent", "InvalidInput")
    assert "storage_id" in reason["message"]
    assert tl["steps"][1]["payload"]["error"] == reason
    assert tl["run"]["status"] == "failed" and tl["workOrder"]["status"] == "failed"


async def test_a_second_workflow_for_the_same_order_is_refused(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    """A finished order cannot be run again: runs:start refuses, nothing new is recorded."""
    job = await make_work_order()
    await run_job(time_skipping_env, convex_client, job, Scenario())
    jobs, records = activities(convex_client, Scenario())
    async with running_worker(time_skipping_env, jobs, records) as queue:
        with pytest.raises(WorkflowFailureError) as failure:
            await time_skipping_env.client.execute_workflow(
                CodexJobWorkflow.run, job, id=f"again-{uuid.uuid4().hex}", task_queue=queue
            )
    cause = failure.value.cause
    assert isinstance(cause, ActivityError) and cause.cause is not None
    assert isinstance(cause.cause, ApplicationError) and cause.cause.type == "INVALID_TRANSITION"


async def test_a_run_that_ends_has_every_record_before_its_final_status(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
) -> None:
    """The final status is written only after every other record: when Convex shows the run
    ended, its steps, artifacts and events are all there (observed by the status write)."""
    job = await make_work_order()
    seen: dict[str, Any] = {}
    real = PersistenceActivities(convex_client, worker_id="test-worker")

    class Observed(FlakyPersistence):
        async def _flaky(self, name: str, call: Any) -> Any:
            if name == "update_run_status":
                run = await convex_client.query(
                    "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": job.work_order_id}
                )
                seen.update(await timeline(convex_client, run["_id"]))
            return await call()

    result, tl = await run_job(
        time_skipping_env, convex_client, job, Scenario(checks=("make lint",)), Observed(real)
    )
    assert isinstance(result, CodexJobResult) and tl is not None
    # Just before the final status: every step already ended, every artifact there.
    assert all(s["status"] != "running" for s in seen["steps"])
    assert step_states(seen) == step_states(tl)
    assert len(seen["artifacts"]) == len(tl["artifacts"]) == 3
    assert len(seen["events"]) == len(tl["events"]) - 1  # all but the run's own final event
