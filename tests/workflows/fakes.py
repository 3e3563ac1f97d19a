"""Fault injection for workflow tests: the REAL persistence activities made flaky.

The job activities are the STAND-INS of tools/standins/activities.py (re-exported here); the
persistence activities are NOT stood in for: workflow tests record into the local Convex backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.persistence import PersistenceActivities
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
from tools.standins.activities import BASE_SHA, HEAD_SHA, Scenario, StandinJobActivities

__all__ = ["BASE_SHA", "HEAD_SHA", "FlakyPersistence", "Scenario", "StandinJobActivities"]


class FlakyPersistence:
    """The REAL persistence activities, made to fail like an unreliable Convex.

    Each call fails its first ``failures`` attempts with a retryable error; on odd calls the
    first failure comes AFTER the real write (a lost response), so the retry repeats a write
    that already landed. Convex's idempotency must absorb both.
    """

    def __init__(self, real: PersistenceActivities, failures: int = 2) -> None:
        self.real = real
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.calls = 0

    async def _flaky(self, name: str, call: Callable[[], Any]) -> Any:
        info = activity.info()
        self.attempts[name] = self.attempts.get(name, 0) + 1
        if info.attempt <= self.failures:
            self.calls += 1
            if info.attempt == 1 and self.calls % 2 == 1:
                await call()  # the write lands, the answer is lost
            raise ApplicationError("Convex unavailable (injected)", type="ConvexUnavailable")
        return await call()

    @activity.defn(name="record_run_start")
    async def record_run_start(self, start: RunStart) -> str:
        return str(await self._flaky("record_run_start", lambda: self.real.record_run_start(start)))

    @activity.defn(name="upsert_step")
    async def upsert_step(self, update: StepUpdate) -> StepResult:
        result: StepResult = await self._flaky("upsert_step", lambda: self.real.upsert_step(update))
        return result

    @activity.defn(name="add_artifact")
    async def add_artifact(self, artifact: ArtifactAdd) -> str:
        return str(await self._flaky("add_artifact", lambda: self.real.add_artifact(artifact)))

    @activity.defn(name="append_event")
    async def append_event(self, event: EventAppend) -> str:
        return str(await self._flaky("append_event", lambda: self.real.append_event(event)))

    @activity.defn(name="append_events")
    async def append_events(self, batch: EventBatch) -> int:
        return int(await self._flaky("append_events", lambda: self.real.append_events(batch)))

    @activity.defn(name="reject_work_order")
    async def reject_work_order(self, reject: RejectWorkOrder) -> bool:
        return bool(
            await self._flaky("reject_work_order", lambda: self.real.reject_work_order(reject))
        )

    @activity.defn(name="update_run_status")
    async def update_run_status(self, update: RunStatusUpdate) -> RunStatusResult:
        result: RunStatusResult = await self._flaky(
            "update_run_status", lambda: self.real.update_run_status(update)
        )
        return result

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
