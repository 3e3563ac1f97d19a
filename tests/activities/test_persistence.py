"""The persistence activities against the local Convex backend: camelCase arguments reach the
real functions, repeats are absorbed, and every failure is classified for Temporal's retries."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contract import ERROR_CODES
from activities.convex_client import ConvexClient
from activities.persistence import CONVEX_REQUEST_ERROR, CONVEX_UNAVAILABLE, PersistenceActivities
from activities.persistence_models import EventAppend, RunStart, RunStatusUpdate, StepUpdate
from worker.cli.submit import submit_as_operator
from worker.local.processes import free_port
from workflows.policies import NON_RETRYABLE_PERSISTENCE_ERRORS


async def new_run(convex: ConvexClient) -> tuple[str, str]:
    order = (await submit_as_operator(convex, repo="/r", prompt="go", title="s")).work_order_id
    acts = PersistenceActivities(convex, worker_id="worker-7")
    start = RunStart(
        workflow_request_id=order,
        temporal_workflow_id=f"wf-{uuid.uuid4().hex}",
        temporal_run_id="run-1",
        task_queue="jangar",
        repo="/r",
        branch="codex/x",
        started_at=1000.0,
    )
    env = ActivityEnvironment()
    first = await env.run(acts.record_run_start, start)
    again = await env.run(acts.record_run_start, start)
    assert first == again
    return order, first


async def test_writers_reach_the_real_functions_and_absorb_repeats(
    convex_client: ConvexClient,
) -> None:
    order, run_id = await new_run(convex_client)
    acts = PersistenceActivities(convex_client, worker_id="worker-7")
    env = ActivityEnvironment()
    done = StepUpdate(run_id=run_id, name="prepare", kind="activity", status="succeeded")
    late = StepUpdate(run_id=run_id, name="prepare", kind="activity", status="running")
    assert (await env.run(acts.upsert_step, done)).changed
    stale = await env.run(acts.upsert_step, late)
    assert stale.status == "succeeded" and not stale.changed
    event = EventAppend(
        run_id=run_id, workflow_request_id=order, type="comment", idempotency_key="k1"
    )
    assert await env.run(acts.append_event, event) == await env.run(acts.append_event, event)
    final = RunStatusUpdate(run_id=run_id, status="succeeded", ended_at=2000.0)
    assert (await env.run(acts.update_run_status, final)).changed
    assert not (await env.run(acts.update_run_status, final)).changed
    run = await convex_client.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": order}
    )
    assert run["workerId"] == "worker-7" and run["status"] == "succeeded"


async def test_a_refused_transition_is_non_retryable_with_its_code(
    convex_client: ConvexClient,
) -> None:
    _, run_id = await new_run(convex_client)
    acts = PersistenceActivities(convex_client, worker_id="w")
    env = ActivityEnvironment()
    await env.run(acts.update_run_status, RunStatusUpdate(run_id=run_id, status="succeeded"))
    with pytest.raises(ApplicationError) as refused:
        await env.run(acts.update_run_status, RunStatusUpdate(run_id=run_id, status="running"))
    assert refused.value.type == "INVALID_TRANSITION" and refused.value.non_retryable
    assert refused.value.type in NON_RETRYABLE_PERSISTENCE_ERRORS


async def test_an_unknown_run_is_non_retryable(convex_client: ConvexClient) -> None:
    _, run_id = await new_run(convex_client)
    acts = PersistenceActivities(convex_client, worker_id="w")
    # A well-formed id of the runs table that no run has (convex-test numbers ids in order).
    number = int(run_id.removesuffix("runs"))
    bogus = f"{number + 10**6:0{len(run_id) - 4}d}runs"
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            acts.upsert_step,
            StepUpdate(run_id=bogus, name="n", kind="activity", status="running"),
        )
    assert failed.value.type == "NOT_FOUND" and failed.value.non_retryable


async def test_an_unreachable_convex_is_retryable() -> None:
    async with ConvexClient(f"http://127.0.0.1:{free_port()}", "k", timeout=2) as convex:
        acts = PersistenceActivities(convex, worker_id="w")
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(
                acts.append_event,
                EventAppend(
                    run_id="r", workflow_request_id="w", type="system", idempotency_key="k"
                ),
            )
    assert failed.value.type == CONVEX_UNAVAILABLE and not failed.value.non_retryable
    assert CONVEX_UNAVAILABLE not in NON_RETRYABLE_PERSISTENCE_ERRORS


def test_every_convex_error_code_is_non_retryable_in_the_retry_policy() -> None:
    """A code Convex throws but the policy retried would be retried for six hours instead of
    failing at once. Both sides take the codes from convex/lib/contract.json."""
    source = (Path(__file__).parents[2] / "convex" / "lib" / "errors.ts").read_text()
    assert 'from "./contract"' in source, "errors.ts must take its codes from the contract"
    assert set(ERROR_CODES) | {CONVEX_REQUEST_ERROR} == set(NON_RETRYABLE_PERSISTENCE_ERRORS)
