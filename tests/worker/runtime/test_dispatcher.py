"""The dispatcher against the real Temporal dev server and the local Convex backend.

No worker polls the task queues used here: started workflows just wait in Temporal, which is
all the dispatcher is responsible for. Every test terminates the workflows it caused.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.convex_client import ConvexClient
from tests.git_repos import make_bare_repo
from tests.worker.conftest import (
    clean_env,
    create_order,
    jangar,
    start_jangar,
    unique_queue,
    wait_until,
)
from worker.cli.submit import submit_as_operator
from worker.local.local_convex import RunningBackend
from worker.local.processes import ManagedProcess, free_port, start_temporal_dev_server
from worker.runtime.dispatcher import BATCH, Dispatcher, workflow_id_for
from worker.runtime.temporal_client import DATA_CONVERTER
from worker.settings import Settings, load_settings
from workflows.codex_job import CodexJobWorkflow
from workflows.models import CodexJobInput

REPO = "https://git.example.test/acme/app.git"


def settings_for(temporal: str, convex: RunningBackend, queue: str) -> Settings:
    return load_settings(
        temporal_address=temporal,
        temporal_task_queue=queue,
        convex_url=convex.url,
        convex_admin_key=convex.admin_key,
        dispatcher_poll_seconds=0.05,
        allow_local_repos=True,
        # The tests share one backend, whose dispatched orders never end (no worker runs
        # them): only the test of the limits sets them low.
        max_jobs_per_user=1000,
        max_jobs_per_repo=1000,
    )


@pytest.fixture
async def temporal_client(op_temporal: ManagedProcess) -> Client:
    return await Client.connect(op_temporal.address, data_converter=DATA_CONVERTER)


@pytest.fixture
async def queue(temporal_client: Client) -> AsyncIterator[str]:
    """A fresh task queue; every workflow still running on it is terminated afterwards."""
    name = unique_queue("dispatch")
    yield name
    async for execution in temporal_client.list_workflows(
        f"TaskQueue = '{name}' AND ExecutionStatus = 'Running'"
    ):
        await temporal_client.get_workflow_handle(execution.id).terminate("test over")


async def terminate(client: Client, workflow_ids: Iterable[str]) -> None:
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate("test over")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


async def started_input(client: Client, workflow_id: str) -> CodexJobInput:
    """The input the workflow was started with, decoded from its first history event."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    first = history.events[0]
    assert first.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    payloads = first.workflow_execution_started_event_attributes.input.payloads
    [job] = await client.data_converter.decode(payloads, [CodexJobInput])
    assert isinstance(job, CodexJobInput)
    return job


async def linked_to(convex: ConvexClient, order_id: str) -> str | None:
    order = await convex.query("workOrders:getAsOperator", {"workflowRequestId": order_id})
    linked: str | None = order.get("temporalWorkflowId")
    return linked


async def queued_ids(convex: ConvexClient) -> set[str]:
    return {o["_id"] for o in await convex.query("workOrders:listQueued", {"limit": 100})}


async def test_queued_orders_start_their_workflow_and_get_linked(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
) -> None:
    orders = [
        await create_order(op_convex_client, REPO, "Add a NOTES.md", baseBranch="main"),
        await create_order(
            op_convex_client, REPO, "Fix the typo", branchHint="fix/typo", checks=["make test"]
        ),
    ]
    settings = settings_for(op_temporal.address, op_convex, queue)
    dispatcher = Dispatcher(temporal_client, op_convex_client, settings)

    assert await dispatcher.dispatch_once() >= 2
    assert dispatcher.started >= 2
    for order_id in orders:
        workflow_id = f"work-order-{order_id}"
        assert workflow_id_for(order_id) == workflow_id
        assert await linked_to(op_convex_client, order_id) == workflow_id
        described = await temporal_client.get_workflow_handle(workflow_id).describe()
        assert described.workflow_type == "CodexJobWorkflow"
        assert described.task_queue == queue
        assert described.status == WorkflowExecutionStatus.RUNNING
    assert not (set(orders) & await queued_ids(op_convex_client))

    # The input is the order's id alone: the worker that runs the job reads the rest, so the
    # job's limits are never the dispatcher's.
    started = [await started_input(temporal_client, f"work-order-{o}") for o in orders]
    assert started == [CodexJobInput(work_order_id=o) for o in orders]


async def test_a_third_job_for_a_repository_limited_to_two_waits_queued_until_one_ends(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
) -> None:
    repo = f"https://git.example.test/acme/limited-{uuid.uuid4().hex[:8]}.git"
    await op_convex_client.mutation("repositories:add", {"url": repo, "maxConcurrentRuns": 2})
    orders = [await create_order(op_convex_client, repo, f"job {n}") for n in range(3)]
    dispatcher = Dispatcher(
        temporal_client, op_convex_client, settings_for(op_temporal.address, op_convex, queue)
    )

    await dispatcher.dispatch_once()
    await dispatcher.dispatch_once()  # a second poll starts nothing more
    linked = [await linked_to(op_convex_client, o) for o in orders]
    assert linked == [f"work-order-{orders[0]}", f"work-order-{orders[1]}", None]
    assert orders[2] in await queued_ids(op_convex_client)  # waiting, not dropped

    # The first job ends; the third starts at the next poll.
    await temporal_client.get_workflow_handle(f"work-order-{orders[0]}").terminate("ended")
    await op_convex_client.mutation(
        "workOrders:reject", {"workflowRequestId": orders[0], "reason": "ended by the test"}
    )
    await dispatcher.dispatch_once()
    assert await linked_to(op_convex_client, orders[2]) == f"work-order-{orders[2]}"


async def test_one_users_jobs_beyond_the_per_user_limit_stay_queued_in_order(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
) -> None:
    user = f"busy-{uuid.uuid4().hex[:8]}"
    orders = [
        (
            await submit_as_operator(op_convex_client, repo=REPO, prompt=f"job {n}", user=user)
        ).work_order_id
        for n in range(3)
    ]
    settings = settings_for(op_temporal.address, op_convex, queue).model_copy(
        update={"max_jobs_per_user": 1}
    )
    await Dispatcher(temporal_client, op_convex_client, settings).dispatch_once()
    linked = [await linked_to(op_convex_client, o) for o in orders]
    assert linked == [f"work-order-{orders[0]}", None, None]
    assert set(orders[1:]) <= await queued_ids(op_convex_client)


async def test_already_started_counts_as_success(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
) -> None:
    """A dispatcher that crashed between starting the workflow and linking the order."""
    order_id = await create_order(op_convex_client, REPO)
    workflow_id = f"work-order-{order_id}"
    settings = settings_for(op_temporal.address, op_convex, queue)
    [order] = [
        o
        for o in await op_convex_client.query("workOrders:listQueued", {"limit": 100})
        if o["_id"] == order_id
    ]
    first = await temporal_client.start_workflow(
        CodexJobWorkflow.run,
        CodexJobInput(work_order_id=order["_id"]),
        id=workflow_id,
        task_queue=queue,
    )
    assert await linked_to(op_convex_client, order_id) is None

    dispatcher = Dispatcher(temporal_client, op_convex_client, settings)
    assert await dispatcher.dispatch_once() >= 1
    assert await linked_to(op_convex_client, order_id) == workflow_id
    assert order_id not in await queued_ids(op_convex_client)
    # Still the first run: nothing was started twice.
    described = await temporal_client.get_workflow_handle(workflow_id).describe()
    assert described.run_id == first.result_run_id
    runs = [e async for e in temporal_client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    assert len(runs) == 1


async def test_invalid_order_is_rejected_and_does_not_block_the_queue(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Convex now refuses a prompt over the workflow's 100 000 characters when the order is
    # created; one from before that rule (or written by hand) still reaches the dispatcher.
    # The queue is made to show it that way.
    invalid = await create_order(op_convex_client, REPO, "soon too long")
    valid = await create_order(op_convex_client, REPO, "Add a NOTES.md")
    listed = op_convex_client.query

    async def query(path: str, args: dict[str, Any] | None = None) -> Any:
        result = await listed(path, args)
        if path in ("workOrders:listQueued", "workOrders:listDispatchable"):
            result = [{**o, "prompt": "x" * 150_000} if o["_id"] == invalid else o for o in result]
        return result

    monkeypatch.setattr(op_convex_client, "query", query)
    settings = settings_for(op_temporal.address, op_convex, queue)
    dispatcher = Dispatcher(temporal_client, op_convex_client, settings)

    await dispatcher.dispatch_once()

    rejected = await op_convex_client.query(
        "workOrders:getAsOperator", {"workflowRequestId": invalid}
    )
    assert rejected["status"] == "failed"
    assert "prompt" in rejected["failureReason"]
    assert "x" * 100 not in rejected["failureReason"]  # the reason does not echo the input
    assert rejected.get("temporalWorkflowId") is None
    with pytest.raises(RPCError) as missing:
        await temporal_client.get_workflow_handle(f"work-order-{invalid}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert dispatcher.rejected >= 1
    # The valid order behind it went through in the same poll, and the queue is clear of both.
    assert await linked_to(op_convex_client, valid) == f"work-order-{valid}"
    assert not ({invalid, valid} & await queued_ids(op_convex_client))


async def test_two_dispatchers_at_once_start_one_workflow_per_order_and_lose_none(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
) -> None:
    count = 30
    assert count > BATCH  # more than one poll's worth
    orders = list(
        await asyncio.gather(
            *(create_order(op_convex_client, REPO, f"job {i}") for i in range(count))
        )
    )
    settings = settings_for(op_temporal.address, op_convex, queue)
    # Two dispatchers as two processes would be: each with its own connections.
    other_temporal = await Client.connect(op_temporal.address, data_converter=DATA_CONVERTER)
    async with ConvexClient(op_convex.url, op_convex.admin_key) as other_convex:
        dispatchers = [
            Dispatcher(temporal_client, op_convex_client, settings),
            Dispatcher(other_temporal, other_convex, settings),
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(d.run(stop)) for d in dispatchers]
        try:

            async def all_left_the_queue() -> bool:
                return not set(orders) & await queued_ids(op_convex_client)

            await wait_until(all_left_the_queue, within=60, what="every order to be dispatched")
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    for order_id in orders:
        assert await linked_to(op_convex_client, order_id) == f"work-order-{order_id}"

    # Visibility is eventually consistent: wait until it lists every expected workflow.
    expected = {f"work-order-{o}" for o in orders}
    async with asyncio.timeout(30):
        while True:
            listed = [e.id async for e in temporal_client.list_workflows(f"TaskQueue = '{queue}'")]
            if expected <= set(listed):
                break
            await asyncio.sleep(0.2)
    per_id = Counter(listed)
    assert max(per_id.values()) == 1, per_id.most_common(3)  # one workflow per order
    # Between them the dispatchers started exactly the workflows on the queue, once each.
    assert sum(d.started for d in dispatchers) == len(per_id)


async def test_dispatcher_keeps_polling_while_temporal_is_down_and_catches_up(
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    tmp_path: Path,
) -> None:
    """Temporal stops and comes back (same port, same SQLite file): no order is lost."""
    port = free_port()
    temporal = start_temporal_dev_server(tmp_path / "temporal", port=port)
    client = await Client.connect(temporal.address, data_converter=DATA_CONVERTER)
    queue = unique_queue("outage")
    settings = settings_for(temporal.address, op_convex, queue)
    dispatcher = Dispatcher(client, op_convex_client, settings)
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        temporal.stop()
        order_id = await create_order(op_convex_client, REPO, "during the outage")
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(1.0)
        assert not task.done()  # the failures did not end the loop
        assert await linked_to(op_convex_client, order_id) is None

        temporal = start_temporal_dev_server(tmp_path / "temporal", port=port)

        async def linked() -> bool:
            return await linked_to(op_convex_client, order_id) is not None

        await wait_until(linked, within=45, what="the order to be linked after the outage")
        described = await client.get_workflow_handle(f"work-order-{order_id}").describe()
        assert described.task_queue == queue
    finally:
        stop.set()
        if task is not None:
            await task
        temporal.stop()


async def test_submit_with_temporal_unreachable_leaves_the_order_to_the_dispatcher(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    tmp_path: Path,
    queue: str,
) -> None:
    assert op_convex.admin_key is not None
    repo = await asyncio.to_thread(make_bare_repo, tmp_path)
    done = await asyncio.to_thread(
        jangar,
        "submit",
        "--repo",
        str(repo),
        "--prompt",
        "Add a NOTES.md",
        "--json",
        env=clean_env(
            TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing listens there
            CONVEX_URL=op_convex.url,
            CONVEX_ADMIN_KEY=op_convex.admin_key,
        ),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "notice: Temporal is unreachable" in done.stderr
    assert "TEMPORAL_ADDRESS" in done.stderr and "dispatcher" in done.stderr
    result = json.loads(done.stdout)
    order_id = result["workOrderId"]
    assert result["status"] == "queued"
    assert result["workflowId"] == f"work-order-{order_id}"
    assert order_id in await queued_ids(op_convex_client)

    settings = settings_for(op_temporal.address, op_convex, queue)
    await Dispatcher(temporal_client, op_convex_client, settings).dispatch_once()
    assert await linked_to(op_convex_client, order_id) == result["workflowId"]
    described = await temporal_client.get_workflow_handle(result["workflowId"]).describe()
    assert described.task_queue == queue


async def test_an_order_the_job_could_never_run_is_rejected_at_dispatch(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rules the job's input enforces are checked again at dispatch, with the dispatcher's
    own settings: a local repository on a deployment that refuses them (Convex cannot know
    that), and a branch hint and a check from before Convex refused them at creation (the
    queue is made to show them that way) never reach Temporal."""
    local = await create_order(op_convex_client, str(make_bare_repo(tmp_path / "r")), "x")
    bad_branch = await create_order(op_convex_client, REPO, "x")
    bad_check = await create_order(op_convex_client, REPO, "x")
    edits: dict[str, dict[str, Any]] = {
        bad_branch: {"branchHint": "a..b"},
        bad_check: {"checks": ["make\x00test"]},
    }
    listed = op_convex_client.query

    async def query(path: str, args: dict[str, Any] | None = None) -> Any:
        result = await listed(path, args)
        if path == "workOrders:listDispatchable":
            result = [{**o, **edits.get(o["_id"], {})} for o in result]
        return result

    monkeypatch.setattr(op_convex_client, "query", query)
    settings = settings_for(op_temporal.address, op_convex, queue).model_copy(
        update={"allow_local_repos": False}
    )
    await Dispatcher(temporal_client, op_convex_client, settings).dispatch_once()
    for order_id, words in (
        (local, "JANGAR_ALLOW_LOCAL_REPOS"),
        (bad_branch, "a..b"),
        (bad_check, "NUL"),
    ):
        order = await listed("workOrders:getAsOperator", {"workflowRequestId": order_id})
        assert order["status"] == "failed" and words in order["failureReason"]
        assert order.get("temporalWorkflowId") is None


async def test_jangar_dispatcher_process_dispatches_and_stops_on_sigterm(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    temporal_client: Client,
    tmp_path: Path,
    queue: str,
) -> None:
    """`jangar dispatcher` alone (no worker): orders get their workflow; SIGTERM ends it (0)."""
    assert op_convex.admin_key is not None
    process = start_jangar(
        "dispatcher",
        env=clean_env(
            TEMPORAL_ADDRESS=op_temporal.address,
            TEMPORAL_TASK_QUEUE=queue,
            CONVEX_URL=op_convex.url,
            CONVEX_ADMIN_KEY=op_convex.admin_key,
            DISPATCHER_POLL_SECONDS="0.1",
            JANGAR_MAX_JOBS_PER_USER=1000,  # the earlier tests' orders are still dispatched
            JANGAR_MAX_JOBS_PER_REPO=1000,
        ),
        logs=tmp_path / "logs",
    )
    try:
        order_id = await create_order(op_convex_client, REPO, "for the dispatcher process")

        async def linked() -> bool:
            return await linked_to(op_convex_client, order_id) is not None

        await wait_until(linked, within=30, what="`jangar dispatcher` to link the order")
        described = await temporal_client.get_workflow_handle(f"work-order-{order_id}").describe()
        assert described.task_queue == queue

        process.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.proc.wait, 15) == 0, process.stderr()[-2000:]
        dispatched = [r for r in process.json_lines() if r["event"] == "work order dispatched"]
        assert [r["work_order_id"] for r in dispatched if r["work_order_id"] == order_id]
        assert op_convex.admin_key not in process.stderr()
    finally:
        process.stop()
