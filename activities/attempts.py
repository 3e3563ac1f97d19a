"""What one attempt of a workspace step knows about itself, and about the attempt before it.

Temporal retries a step whose worker was lost (no heartbeat within the heartbeat timeout) or
that handed itself over (a worker shutting down). The new attempt learns why from the last
heartbeat the old one sent (``activity.info().heartbeat_details``): the worker it ran on,
whether it handed over, and the run's token usage and agent time so far, which keep counting
against the budget. The step's record then says how many attempts it took and why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.models import Attempts

WORKER_SHUTDOWN = "WorkerShutdown"  # retryable: another worker takes the step over
HANDOVER_RETRY_DELAY = timedelta(seconds=1)
"""How soon a handed-over step is offered to the other workers."""


@dataclass(frozen=True)
class AttemptContext:
    """What Temporal tells an attempt about itself (``activity.info()``), made explicit so the
    agent can be run and tested outside a worker."""

    workflow_id: str
    run_id: str
    attempt: int
    worker_id: str
    previous: dict[str, Any] | None  # the last heartbeat of the attempt before, if any
    heartbeat: Callable[[dict[str, Any]], None]
    worker_shutdown: Callable[[], Awaitable[None]]


def previous_attempts(attempt: int, previous: dict[str, Any] | None) -> Attempts:
    """How many attempts so far and why the earlier one ended, from its last heartbeat."""
    if attempt <= 1:
        return Attempts()
    worker = (previous or {}).get("worker", "an unknown worker")
    if (previous or {}).get("handover"):
        why = f"attempt {attempt - 1} was handed over by {worker}, which was shutting down"
    elif previous:
        why = (
            f"attempt {attempt - 1} on {worker} stopped heartbeating without a result (the"
            " worker was lost, or the step outlived its time limit)"
        )
    else:
        why = f"attempt {attempt - 1} ended before it could report (the worker was lost)"
    return Attempts(count=attempt, reasons=(why,))


@contextlib.asynccontextmanager
async def handed_over_on_shutdown(
    ctx: AttemptContext, stop: asyncio.Event, *, beat: Callable[..., None], what: str
) -> AsyncIterator[None]:
    """While the body runs, the worker shutting down sets ``stop`` (the step's process is
    stopped at once); the step then ends as the retryable ``WorkerShutdown`` after a last
    ``beat(handover=True)`` (the step's own heartbeat, so whatever it carries, such as the
    agent's usage, reaches the next attempt), and another worker takes it over."""
    shutting_down = asyncio.Event()

    async def watch() -> None:
        await ctx.worker_shutdown()
        shutting_down.set()
        stop.set()

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if shutting_down.is_set():
        beat(handover=True)
        raise ApplicationError(
            f"worker {ctx.worker_id} is shutting down; {what} is handed over to another"
            " worker, which restarts it from its checkpoint",
            type=WORKER_SHUTDOWN,
            next_retry_delay=HANDOVER_RETRY_DELAY,
        )
