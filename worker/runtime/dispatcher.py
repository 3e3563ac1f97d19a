"""The dispatcher: queued work orders in Convex become CodexJobWorkflow executions.

It polls ``workOrders:listDispatchable`` (with backoff when idle or failing): the queued orders
that may start now, oldest first, under the per-user and per-repository limits of the settings
(``JANGAR_MAX_JOBS_PER_USER``/``_REPO``; a registry entry's own limit wins) and with a
follow-up held until the order it continues has ended; the rest stay queued, in order. It
starts one workflow per order with the id ``work-order-<id>`` and links the order to it.
Temporal's workflow-id uniqueness is the lock: when several dispatchers (or a crash between
start and link) race, "already started" counts as success, so each order gets exactly one
workflow and none is lost.

An order the workflow cannot accept (its input fails validation, or Temporal refuses it as an
invalid argument, e.g. too large) is rejected (``workOrders:reject``: the order fails with the
reason) so it leaves the queue. Any other failure of one order is logged and retried on a later
poll without holding up the rest of the batch; Temporal or Convex being down never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.contract import MAX_TEXT_LENGTH
from activities.convex_client import ConvexClient, ConvexClientError
from activities.job_loader import checked_job_spec
from activities.persistence_models import RejectWorkOrder
from worker import factories
from worker.logging import get_logger
from worker.settings import Settings
from workflows.codex_job import CodexJobWorkflow
from workflows.models import CodexJobInput

log = get_logger(__name__)

BATCH = 20
MAX_IDLE_SECONDS = 10.0


class InvalidWorkOrder(ValueError):
    """The order can never start: ``workOrders:reject`` takes it off the queue with the reason."""


def workflow_id_for(work_order_id: str) -> str:
    """The one workflow id of a work order: Temporal refuses a second start with it."""
    return f"work-order-{work_order_id}"


def check_order(order: dict[str, Any], settings: Settings) -> None:
    """Every rule the job's input enforces, checked before the job starts (the job checks them
    again when it loads the order); ``InvalidWorkOrder`` names what is wrong."""
    found = {"order": order, "prompt": order.get("prompt", ""), "repository": None}
    try:
        checked_job_spec(found, factories.job_config(settings))
    except ValueError as exc:
        raise InvalidWorkOrder(f"invalid work order: {exc}") from exc


async def start_job(
    client: Client, convex: ConvexClient, settings: Settings, order: dict[str, Any]
) -> tuple[str, bool]:
    """Start (or find) the order's workflow and link the order to it; True when newly started.

    Raises ``InvalidWorkOrder`` when the order can never start (nothing was started or linked).
    The workflow's input is the order's id alone: the worker that runs the job reads the rest,
    so its limits are that worker's, never the dispatcher's or the submitter's.
    """
    workflow_id = workflow_id_for(order["_id"])
    check_order(order, settings)
    try:
        await client.start_workflow(
            CodexJobWorkflow.run,
            CodexJobInput(work_order_id=order["_id"]),
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        started = True
    except WorkflowAlreadyStartedError:
        started = False
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise InvalidWorkOrder(f"Temporal refused the job: {exc.message}") from exc
        raise
    await convex.mutation(
        "workOrders:markDispatched",
        {"workflowRequestId": order["_id"], "temporalWorkflowId": workflow_id},
    )
    return workflow_id, started


async def reject(convex: ConvexClient, work_order_id: str, reason: str) -> None:
    """Fail the order with ``reason`` so it leaves the queue (idempotent)."""
    args = RejectWorkOrder(workflow_request_id=work_order_id, reason=reason[:MAX_TEXT_LENGTH])
    await convex.mutation("workOrders:reject", args.convex_args())


class DispatchStalled(RuntimeError):
    """A poll found queued orders but could start none of them: back off before the next."""


class Dispatcher:
    """Polls for queued work orders and starts their jobs."""

    def __init__(self, client: Client, convex: ConvexClient, settings: Settings) -> None:
        self._client = client
        self._convex = convex
        self._settings = settings
        self.started = 0  # workflows this dispatcher started ("already started" not counted)
        self.rejected = 0  # orders it took off the queue as invalid

    async def dispatch_once(self) -> int:
        """One poll: start every queued order in the batch; returns how many left the queue.

        A failure of one order (Temporal unavailable, a Convex write failing) is logged and
        left for the next poll; the rest of the batch still goes. Listing failures propagate.
        """
        orders: list[dict[str, Any]] = await self._convex.query(
            "workOrders:listDispatchable",
            {
                "limit": BATCH,
                "maxPerUser": self._settings.max_jobs_per_user,
                "maxPerRepo": self._settings.max_jobs_per_repo,
            },
        )
        handled = 0
        for order in orders:
            work_order_id = order.get("_id")
            try:
                workflow_id, started = await start_job(
                    self._client, self._convex, self._settings, order
                )
            except InvalidWorkOrder as exc:
                log.error("work order rejected", work_order_id=work_order_id, reason=str(exc))
                try:
                    await reject(self._convex, order["_id"], str(exc))
                except ConvexClientError as rejection:
                    log.warning(
                        "could not reject work order",
                        work_order_id=work_order_id,
                        error=str(rejection),
                    )
                    continue
                self.rejected += 1
                handled += 1
                continue
            except (ConvexClientError, RPCError, OSError, RuntimeError) as exc:
                log.warning(
                    "work order not dispatched; will retry",
                    work_order_id=work_order_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            self.started += int(started)
            handled += 1
            log.info(
                "work order dispatched",
                work_order_id=work_order_id,
                workflow_id=workflow_id,
                newly_started=started,
            )
        if orders and not handled:
            raise DispatchStalled(f"none of {len(orders)} queued work orders could be started")
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set: again at once after a full batch, at the poll interval
        after some work, and backing off (up to MAX_IDLE_SECONDS) while idle or failing."""
        interval = self._settings.dispatcher_poll_seconds
        delay = interval
        while not stop.is_set():
            try:
                handled = await self.dispatch_once()
            except Exception as exc:  # a poll never ends the loop: Convex or Temporal may be down
                delay = min(max(delay, interval) * 2, MAX_IDLE_SECONDS)
                log.warning(
                    "dispatcher poll failed",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                    exc_info=not isinstance(exc, ConvexClientError | RPCError | DispatchStalled),
                )
            else:
                if handled >= BATCH:
                    delay = 0.0
                elif handled:
                    delay = interval
                else:
                    delay = min(max(delay, interval) * 1.5, MAX_IDLE_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
