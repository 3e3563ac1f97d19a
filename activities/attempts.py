"""What one attempt of a workspace step knows about itself, and about the attempt before it.

Temporal retries a step whose worker was lost (no heartbeat within the heartbeat timeout) or
that handed itself over (a worker shutting down). The new attempt learns why from the last
heartbeat the old one sent (``activity.info().heartbeat_details``): the worker it ran on,
whether it handed over, and the run's token usage and agent time so far, which keep counting
against the budget. The step's record then says how many attempts it took and why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
