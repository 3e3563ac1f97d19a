"""The four orders that once hung forever now end ``failed`` with a reason, within a minute.

Convex refuses each of them at creation now (convex/lib/jobRules.ts; the shared vectors in
tests/tools/test_contract_vectors.py). These tests take the case Convex cannot rule out: an
order stored before that rule, or edited by hand. The order is created valid, and the job's
REAL ``load_job`` reads it through a client that edits the stored answer into the bad one. The
workflow then runs on the time-skipping server with the real persistence activities, and the
order must end ``failed`` naming what was wrong, with no run started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.job_loader import load_job
from activities.models import JobSpec, LoadJobInput
from activities.persistence import PersistenceActivities
from tests.activities.conftest import make_config
from tests.workflows.conftest import MakeWorkOrder, running_worker
from tools.standins.activities import Scenario, StandinJobActivities
from workflows.codex_job import CodexJobWorkflow

Edit = Callable[[dict[str, Any]], dict[str, Any]]


def order_field(name: str, value: Any) -> Edit:
    return lambda found: {**found, "order": {**found["order"], name: value}}


HANGING_ORDERS: dict[str, tuple[Edit, str]] = {
    "branch hint a..b": (order_field("branchHint", "a..b"), "branch"),
    "NUL in the prompt": (lambda found: {**found, "prompt": "Add\x00 a NOTES.md"}, "prompt"),
    "NUL in a check": (order_field("checks", ["make\x00test"]), "check"),
    "relative repository": (order_field("repo", "relative/x"), "repo"),
}


class StoredBeforeTheRules:
    """The real client, with ``workOrders:getForJob``'s answer edited by ``edit``."""

    def __init__(self, convex: ConvexClient, edit: Edit) -> None:
        self._convex = convex
        self._edit = edit

    async def query(self, path: str, args: dict[str, Any] | None = None) -> Any:
        found = await self._convex.query(path, args)
        return self._edit(found) if path == "workOrders:getForJob" else found


class RealLoader(StandinJobActivities):
    """The real ``load_job`` (the rest of the job is never reached)."""

    def __init__(self, scenario: Scenario, convex: Any, config: JobConfig) -> None:
        super().__init__(scenario)
        self._convex = convex
        self._config = config

    @activity.defn(name="load_job")
    async def load_job(self, inp: LoadJobInput) -> JobSpec:
        self.s.calls.append("load_job")
        return await load_job(inp, convex=self._convex, config=self._config)


@pytest.mark.parametrize("case", list(HANGING_ORDERS))
async def test_an_order_stored_before_the_rules_ends_failed_with_its_reason_within_a_minute(
    time_skipping_env: WorkflowEnvironment,
    convex_client: ConvexClient,
    make_work_order: MakeWorkOrder,
    tmp_path: Path,
    case: str,
) -> None:
    edit, field = HANGING_ORDERS[case]
    job = await make_work_order()
    scenario = Scenario()
    jobs = RealLoader(scenario, StoredBeforeTheRules(convex_client, edit), make_config(tmp_path))
    records = PersistenceActivities(convex_client, worker_id="test-worker")

    async with (
        asyncio.timeout(60),
        running_worker(time_skipping_env, jobs.all(), records.all()) as q,
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await time_skipping_env.client.execute_workflow(
                CodexJobWorkflow.run, job, id=f"work-order-{job.work_order_id}", task_queue=q
            )

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidWorkOrder"
    assert scenario.calls == ["load_job"]  # nothing else ran
    order = await convex_client.query(
        "workOrders:getAsOperator", {"workflowRequestId": job.work_order_id}
    )
    assert order["status"] == "failed"
    assert field in order["failureReason"].lower()
    run = await convex_client.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": job.work_order_id}
    )
    assert run is None
