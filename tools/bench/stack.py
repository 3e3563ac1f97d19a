"""The servers and worker processes a benchmark run drives, and running jobs through them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError

from activities.convex_client import ConvexClient
from activities.persistence import PersistenceActivities
from tools.bench.measure import row
from tools.convex_proxy import FlakyProxy
from tools.run_demo import STANDIN
from worker.cli.submit import SubmitRequest, create_work_order
from worker.local.local_convex import DEV_ADMIN_KEY, RunningBackend
from worker.local.processes import ManagedProcess
from worker.runtime.dispatcher import start_job
from worker.settings import Settings
from workflows.codex_job import CodexJobWorkflow

ROOT = Path(__file__).resolve().parents[2]
PERSISTENCE_ACTIVITIES = frozenset(
    name
    for name, method in vars(PersistenceActivities).items()
    if hasattr(method, "__temporal_activity_definition")
)
"""The activities that write to Convex, read off the real class so none is left out."""


class BenchError(RuntimeError):
    """Something the benchmark needs did not work; the message says what."""


@dataclass(frozen=True)
class Sizes:
    """How much each section does; ``--quick`` shrinks it to fit in about 30 s."""

    calls: int  # pooled-client calls per measurement
    legacy_calls: int  # ConvexHttpClient calls
    inflight: int  # concurrent pooled-client calls
    seq_jobs: int  # stand-in jobs at concurrency 1
    conc_jobs: int  # stand-in jobs at concurrency `concurrency`
    concurrency: int
    real_jobs: int  # whole jobs with the stand-in agent and git (after one warm-up)
    ws_repo: str = "large"  # section 5's generated repository: "large" or "medium"
    ws_warm_jobs: int = 5  # section 5: jobs on a warm repository cache
    ws_cold_runs: int = 2  # section 5: cold caches (and today's new work orders) to measure
    sandbox_jobs: int = 8  # section 6: jobs with the sandbox and as many without (after warm-up)


FULL = Sizes(
    calls=1000,
    legacy_calls=500,
    inflight=8,
    seq_jobs=10,
    conc_jobs=32,
    concurrency=8,
    real_jobs=7,
)


QUICK = Sizes(
    calls=80,
    legacy_calls=40,
    inflight=8,
    seq_jobs=2,
    conc_jobs=8,
    concurrency=8,
    real_jobs=1,
    ws_repo="medium",
    ws_warm_jobs=2,
    ws_cold_runs=1,
    sandbox_jobs=4,
)


FAKE_REPO = "https://github.example/acme/app.git"


_CHILD_ENV_DROP = ("CONVEX_", "TEMPORAL_", "JANGAR_", "GITHUB_", "GH_TOKEN", "CODEX_STANDIN_")


_CHILD_ENV_DROP_EXACT = {
    "HEALTH_HOST",
    "HEALTH_PORT",
    "METRICS_PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "WORKER_ID",
    "DISPATCHER_ENABLED",
    "DISPATCHER_POLL_SECONDS",
    "SHUTDOWN_GRACE_SECONDS",
    "MAX_CONCURRENT_ACTIVITIES",
    "MAX_CONCURRENT_WORKFLOW_TASKS",
}


@dataclass
class Stack:
    temporal: ManagedProcess
    backend: RunningBackend
    base: Path
    proxy: FlakyProxy  # the workers reach Convex through it: it counts their calls
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)


def child_env(stack: Stack, *, queue: str, data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The worker's environment: this stack's addresses, nothing inherited that Settings reads."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_CHILD_ENV_DROP) and k not in _CHILD_ENV_DROP_EXACT
    }
    env.update(
        {
            "TEMPORAL_ADDRESS": stack.temporal.address,
            "TEMPORAL_TASK_QUEUE": queue,
            "CONVEX_URL": stack.proxy.url,
            "JANGAR_ALLOW_LOCAL_REPOS": "true",  # the sample repository is a local bare one
            "JANGAR_SANDBOX_READ_ONLY": f"{Path(sys.base_prefix).resolve()}:{STANDIN.parent}",
            "CONVEX_ADMIN_KEY": DEV_ADMIN_KEY,
            "JANGAR_DATA_DIR": str(data_dir),
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": "0",
            "METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "console",
            "DISPATCHER_ENABLED": "false",  # the bench starts jobs itself, as the dispatcher does
            "SHUTDOWN_GRACE_SECONDS": "5",
            "WORKER_ID": f"bench-{queue}",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def spawn_worker(stack: Stack, argv: list[str], env: dict[str, str], log_name: str) -> Path:
    log_path = stack.base / log_name
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.workers.append(proc)
    return log_path


def log_tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


async def guarded(
    proc: subprocess.Popen[bytes], log: Path, work: Awaitable[Any], limit: float
) -> Any:
    """Await ``work``, failing fast when the worker process dies or ``limit`` seconds pass."""
    task = asyncio.ensure_future(work)
    deadline = time.monotonic() + limit
    while not task.done():
        if proc.poll() is not None or time.monotonic() > deadline:
            task.cancel()
            tail = log_tail(log)
            why = (
                f"the worker exited with code {proc.returncode}"
                if proc.returncode is not None
                else f"no result within {limit:g} s"
            )
            raise BenchError(f"{why}; worker log {log}:\n{tail}")
        await asyncio.wait({task}, timeout=0.2)
    return task.result()


@dataclass
class JobOutcome:
    seconds: float
    status: str
    workflow_id: str
    error: str | None = None


async def new_orders(
    convex: ConvexClient, n: int, *, repo: str, prompt: str, checks: list[str]
) -> list[dict[str, Any]]:
    """Work orders as the chat side creates them (session, message, order); not timed."""
    orders = []
    for _ in range(n):
        sub = await create_work_order(
            convex, SubmitRequest(repo=repo, prompt=prompt, user="bench", checks=checks)
        )
        orders.append(
            {
                "_id": sub.work_order_id,
                "sessionId": sub.session_id,
                "repo": repo,
                "prompt": prompt,
                "summary": prompt[:80],
                "checks": checks,
            }
        )
    return orders


async def run_job(
    client: Client, convex: ConvexClient, settings: Settings, order: dict[str, Any]
) -> JobOutcome:
    """Start the job as the dispatcher does (start + markDispatched), wait for its result."""
    t0 = time.perf_counter()
    workflow_id, _ = await start_job(client, convex, settings, order)
    handle = client.get_workflow_handle_for(CodexJobWorkflow.run, workflow_id)
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        return JobOutcome(
            time.perf_counter() - t0, "failed", workflow_id, str(getattr(cause, "message", cause))
        )
    return JobOutcome(time.perf_counter() - t0, result.status, workflow_id)


async def run_jobs(
    client: Client,
    convex: ConvexClient,
    settings: Settings,
    orders: list[dict[str, Any]],
    concurrency: int,
) -> tuple[float, list[JobOutcome]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(order: dict[str, Any]) -> JobOutcome:
        async with gate:
            return await run_job(client, convex, settings, order)

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(o) for o in orders))
    return time.perf_counter() - start, list(outcomes)


@dataclass(frozen=True)
class HistoryStats:
    persistence_writes: int  # persistence activities scheduled: one Convex write each
    activities: int
    workflow_tasks: int  # round trips worker <-> Temporal for the workflow code
    events: int


async def history_stats(client: Client, workflow_id: str) -> HistoryStats:
    """What one job cost Temporal, counted from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    return HistoryStats(
        persistence_writes=sum(1 for name in scheduled if name in PERSISTENCE_ACTIVITIES),
        activities=len(scheduled),
        workflow_tasks=sum(
            1 for e in history.events if e.HasField("workflow_task_completed_event_attributes")
        ),
        events=len(history.events),
    )


def report_failures(outcomes: list[JobOutcome]) -> None:
    bad = [o for o in outcomes if o.status != "succeeded"]
    if bad:
        row("jobs that did not succeed", len(bad), "jobs", f"first: {bad[0].error}")
