"""Carry workflow id, run id and activity type on every log line an activity writes.

Each activity runs in its own asyncio task, so structlog's context variables bound here are seen
by every logger call in that activity (and only there). Temporal's own ``activity.logger`` and
``workflow.logger`` attach the same facts as record extras, which ``worker.logging`` flattens.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class _BindActivityContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity_type=info.activity_type,
            attempt=info.attempt,
        ):
            return await super().execute_activity(input)


class LogContextInterceptor(Interceptor):
    """Worker interceptor that binds Temporal identifiers into structlog's context."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivityContext(next)
