"""Persistence activities: one Temporal activity per Convex writer.

Each is a thin, idempotent call through the one Convex client. Temporal supplies durability and
retries; the Convex functions supply idempotency (natural or explicit keys looked up through an
index), so a retried activity never writes a second row and a late retry never moves a status
backwards. Errors are classified once, here, into what Temporal should retry and what it must not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.convex_client import (
    ConvexClient,
    ConvexClientError,
    ConvexFunctionError,
)
from activities.persistence_models import (
    ArtifactAdd,
    EventAppend,
    EventBatch,
    RejectWorkOrder,
    RunStart,
    RunStatusResult,
    RunStatusUpdate,
    StepResult,
    StepUpdate,
)

# A ConvexError becomes an ApplicationError whose type is its code (convex/lib/errors.ts);
# workflows/policies.py lists every such code as non-retryable (a test keeps the two in step).
# A malformed request, an unknown function or a function that crashed: a bug, not an outage.
CONVEX_REQUEST_ERROR = "ConvexRequestError"
# Convex unreachable, timing out, 5xx or overloaded: retried with backoff until it answers.
CONVEX_UNAVAILABLE = "ConvexUnavailable"


@asynccontextmanager
async def classified_convex_errors(path: str) -> AsyncIterator[None]:
    """Turn the client's errors into ApplicationErrors whose type the workflow can act on."""
    try:
        yield
    except ConvexFunctionError as exc:
        raise ApplicationError(
            f"{path}: {exc.message}",
            {"code": exc.code, "path": path},
            type=exc.code,
            non_retryable=True,
        ) from exc
    except ConvexClientError as exc:
        if exc.retryable:
            raise ApplicationError(
                f"{path}: {exc}", type=CONVEX_UNAVAILABLE, non_retryable=False
            ) from exc
        raise ApplicationError(
            f"{path}: {exc}", type=CONVEX_REQUEST_ERROR, non_retryable=True
        ) from exc


class PersistenceActivities:
    """The persistence activities, sharing one pooled Convex client per worker process."""

    def __init__(self, convex: ConvexClient, *, worker_id: str) -> None:
        self._convex = convex
        self._worker_id = worker_id

    async def _mutation(self, path: str, args: dict[str, Any]) -> Any:
        async with classified_convex_errors(path):
            return await self._convex.mutation(path, args)

    @activity.defn(name="record_run_start")
    async def record_run_start(self, start: RunStart) -> str:
        """``runs:start``: idempotent on (workflow id, run id); returns the Convex run id."""
        if start.worker_id is None:
            start = start.model_copy(update={"worker_id": self._worker_id})
        run_id = await self._mutation("runs:start", start.convex_args())
        return str(run_id)

    @activity.defn(name="upsert_step")
    async def upsert_step(self, update: StepUpdate) -> StepResult:
        """``steps:appendOrUpdate``: upsert on (run, name); a stale status changes nothing."""
        value = await self._mutation("steps:appendOrUpdate", update.convex_args())
        return StepResult(
            step_id=str(value["stepId"]), status=value["status"], changed=bool(value["changed"])
        )

    @activity.defn(name="add_artifact")
    async def add_artifact(self, artifact: ArtifactAdd) -> str:
        """``artifacts:add``: deduplicated on the workflow's idempotency key."""
        return str(await self._mutation("artifacts:add", artifact.convex_args()))

    @activity.defn(name="append_event")
    async def append_event(self, event: EventAppend) -> str:
        """``events:append``: deduplicated on the workflow's idempotency key."""
        return str(await self._mutation("events:append", event.convex_args()))

    @activity.defn(name="append_events")
    async def append_events(self, batch: EventBatch) -> int:
        """``events:appendBatch``: several events in one call, each deduplicated on its key."""
        value = await self._mutation("events:appendBatch", batch.convex_args())
        return int(value["inserted"])

    @activity.defn(name="reject_work_order")
    async def reject_work_order(self, reject: RejectWorkOrder) -> bool:
        """``workOrders:reject``: the order fails with the reason (idempotent)."""
        value = await self._mutation("workOrders:reject", reject.convex_args())
        return bool(value["changed"])

    @activity.defn(name="update_run_status")
    async def update_run_status(self, update: RunStatusUpdate) -> RunStatusResult:
        """``runs:updateStatus``: guarded by the transition table; repeating is a no-op."""
        value = await self._mutation("runs:updateStatus", update.convex_args())
        return RunStatusResult(
            run_id=str(value["runId"]), status=value["status"], changed=bool(value["changed"])
        )

    def all(self) -> list[Any]:
        """Every persistence activity, for worker registration."""
        return [
            self.record_run_start,
            self.upsert_step,
            self.add_artifact,
            self.append_event,
            self.append_events,
            self.reject_work_order,
            self.update_run_status,
        ]
