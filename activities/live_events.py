"""The agent's progress, written to Convex while the agent runs.

A 30-minute agent run that reached Convex only at its end would show "run_agent running" and
nothing else for 30 minutes. Instead the agent activity hands each progress summary to
``LiveEvents``, which writes them in batches (``events:appendBatch``) every few seconds:

- bounded: at most ``limit`` events per attempt; past that a count of what was left out;
- ordered: each event carries the time the agent printed it, and batches go out in order;
- deduplicated: each event's key is ``<workflow>/<run>/agent/<attempt>/<seq>`` (``seq``: its
  index among the agent's JSON lines), so a batch sent again after a lost answer adds nothing,
  and a resumed or retried attempt writes its own events beside the first attempt's;
- lossless: a batch that cannot be written stays queued for the next flush; whatever is still
  queued when the agent ends is returned (``pending()``) for the workflow to write through the
  durable, retried persistence activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from activities.contract import MAX_EVENT_BATCH
from activities.convex_client import ConvexClient, ConvexClientError
from activities.models import AgentProgress
from activities.persistence_models import EventBatch, NewEvent

log = structlog.stdlib.get_logger(__name__)


class LiveEvents:
    """Batches one agent attempt's progress into Convex (see the module docstring)."""

    def __init__(
        self,
        convex: ConvexClient,
        *,
        run_id: str,
        work_order_id: str,
        key_prefix: str,
        attempt: int,
        limit: int = 200,
        flush_seconds: float = 2.0,
    ) -> None:
        self._convex = convex
        self._run_id = run_id
        self._work_order_id = work_order_id
        self._prefix = key_prefix
        self._attempt = attempt
        self._limit = limit
        self._flush_seconds = flush_seconds
        self._queue: list[NewEvent] = []
        self._accepted = 0
        self.dropped = 0
        self.recorded = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, progress: AgentProgress) -> None:
        """Queue one progress summary (past the limit it is only counted)."""
        if self._accepted >= self._limit:
            self.dropped += 1
            return
        self._accepted += 1
        self._queue.append(
            self._event(
                f"{progress.seq}",
                {"agent": progress.model_dump(mode="json"), "attempt": self._attempt},
            )
        )

    def _event(self, suffix: str, data: dict[str, Any]) -> NewEvent:
        return NewEvent(
            type="system",
            data=data,
            idempotency_key=f"{self._prefix}/{suffix}",
            created_at=float(int(time.time() * 1000)),
        )

    async def flush(self) -> None:
        """Write what is queued, a batch at a time; on failure keep it for the next flush."""
        async with self._lock:
            while self._queue:
                batch = self._queue[:MAX_EVENT_BATCH]
                args = EventBatch(
                    run_id=self._run_id, workflow_request_id=self._work_order_id, events=batch
                )
                try:
                    await self._convex.mutation("events:appendBatch", args.convex_args())
                except ConvexClientError as exc:
                    log.warning("live_events_not_written", error=str(exc), queued=len(self._queue))
                    return
                del self._queue[: len(batch)]
                self.recorded += len(batch)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop the periodic flush, note what was left out, and flush once more."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.dropped:
            self._queue.append(
                self._event(
                    "dropped",
                    {
                        "message": f"{self.dropped} more agent events were not recorded"
                        f" (the limit is {self._limit} per attempt); the agent log has them all",
                        "attempt": self._attempt,
                    },
                )
            )
        await self.flush()

    def pending(self) -> tuple[NewEvent, ...]:
        """What could not be written: the workflow writes it through a durable activity."""
        return tuple(self._queue)
