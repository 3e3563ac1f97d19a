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
from workflows.models import CodexJobInput, records_task_queue
from workflows.policies import HEARTBEAT_THROTTLE

MakeWorkOrder = Callable[..., Awaitable[CodexJobInput]]


@pytest.fixture
def make_work_order(convex_client: ConvexClient) -> MakeWorkOrder:
    """Session, user message and work order, in the operator's one mutation."""

    async def make(
        repo: str = "https://github.example/acme/app.git", prompt: str = "Add a NOTES.md"
    ) -> CodexJobInput:
        user = f"user-{uuid.uuid4().hex[:8]}"
        order = await submit_as_operator(
            convex_client, repo=repo, prompt=prompt, title="notes", user=user
        )
        return CodexJobInput(work_order_id=order.work_order_id)

    return make


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment,
    jobs: list[Callable[..., Any]],
    records: list[Callable[..., Any]],
) -> AsyncIterator[str]:
    """Workers for the job workflow on a fresh task queue (the workflow and ``jobs``) and on
    its records' queue (``records``); yields the job's queue's name."""
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    async with (
        Worker(
            env.client,
            task_queue=task_queue,
            workflows=workflows(),
            activities=jobs,
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        ),
        Worker(env.client, task_queue=records_task_queue(task_queue), activities=records),
    ):
        yield task_queue
