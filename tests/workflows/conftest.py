"""Fixtures for workflow tests: a work order in the local Convex backend and a worker to run it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.convex_client import ConvexClient
from worker.cli.submit import submit_as_operator
from worker.runtime.registry import workflows
from workflows.models import CodexJobInput
from workflows.policies import HEARTBEAT_THROTTLE

MakeWorkOrder = Callable[..., Awaitable[CodexJobInput]]


@pytest.fixture
def make_work_order(convex_client: ConvexClient) -> MakeWorkOrder:
    """Session, user message and work order, in the operator's one mutation."""

    async def make(repo: str = "https://github.example/acme/app.git", **job: Any) -> CodexJobInput:
        user = f"user-{uuid.uuid4().hex[:8]}"
        prompt = job.pop("prompt", "Add a NOTES.md")
        order = await submit_as_operator(
            convex_client, repo=repo, prompt=prompt, title="notes", user=user
        )
        return CodexJobInput(work_order_id=order.work_order_id, repo=repo, prompt=prompt, **job)

    return make


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment, activities: list[Callable[..., Any]]
) -> AsyncIterator[str]:
    """A worker for the job workflow on a fresh task queue; yields the queue's name."""
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=workflows(),
        activities=activities,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    ):
        yield task_queue
