"""The worker process: Temporal worker, health endpoints, metrics and graceful shutdown.

Any number of these run as pods on the task queue; each runs workflows and activities. On
SIGTERM the pod turns unready, stops polling, gives running activities the grace period to
finish (the agent is cancelled, which kills its process group) and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client
from temporalio.worker import Worker

from activities.convex_client import ConvexClient
from worker import factories
from worker.logging import configure_logging, get_logger
from worker.runtime.health import HealthServer
from worker.runtime.log_context import LogContextInterceptor
from worker.runtime.registry import workflows
from worker.runtime.temporal_client import check_namespace, connect_temporal, metrics_runtime
from worker.settings import Settings, SettingsError
from workflows.policies import HEARTBEAT_THROTTLE

log = get_logger(__name__)


class ActivitySet(Protocol):
    """An object whose bound methods are activities (``JobActivities``, a stand-in set...)."""

    def all(self) -> Sequence[Callable[..., Any]]: ...


PersistenceFactory = Callable[[ConvexClient], ActivitySet]
"""Builds the persistence activities once the process's Convex client exists."""


def build_workers(
    client: Client,
    *,
    settings: Settings,
    job_activities: ActivitySet,
    persistence_activities: ActivitySet,
) -> list[Worker]:
    """Two pollers: the shared task queue and this worker's own.

    The first serves ``Settings.temporal_task_queue``: the workflows and every activity. The
    second serves this worker's own queue (``Settings.worker_task_queue``), where a job sends
    the steps that need the workspace this worker prepared. The activity sets are arguments so
    that tests and the benchmark register stand-ins the same way production registers the
    real ones (``worker.factories``).
    """
    jobs = list(job_activities.all())
    common: dict[str, Any] = {
        "interceptors": [LogContextInterceptor()],
        "max_concurrent_activities": settings.max_concurrent_activities,
        "graceful_shutdown_timeout": timedelta(seconds=settings.shutdown_grace_seconds),
        "identity": settings.worker_id,
        "max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
    }
    shared = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=workflows(),
        activities=[*jobs, *persistence_activities.all()],
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        **common,
    )
    own = Worker(client, task_queue=settings.worker_task_queue, activities=jobs, **common)
    return [shared, own]


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM (Kubernetes) and SIGINT (Ctrl-C) ask for a graceful stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    job_activities: ActivitySet | None = None,
    persistence_activities: PersistenceFactory | None = None,
) -> None:
    """Run until ``stop`` is set (or a signal arrives), then shut down gracefully.

    ``on_started`` is called with the bound health port once the worker polls (``jangar dev``
    prints it; with HEALTH_PORT=0 only then is it known).
    """
    configure_logging(settings.log_level, settings.log_format)
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    client = await connect_temporal(settings, runtime=metrics_runtime(settings))
    await check_namespace(client)
    async with factories.convex_client(settings) as convex:
        workers = build_workers(
            client,
            settings=settings,
            job_activities=job_activities or factories.job_activities(settings),
            persistence_activities=(
                persistence_activities(convex)
                if persistence_activities is not None
                else factories.persistence_activities(convex, settings)
            ),
        )
        health = HealthServer(
            {
                "temporal": lambda: client.service_client.check_health(),
                "convex": convex.version,
            },
            host=settings.health_host,
            port=settings.health_port,
        )
        try:
            await health.start()
        except OSError as exc:
            raise SettingsError(
                f"HEALTH_PORT: cannot listen on {settings.health_host}:{settings.health_port} "
                f"(HEALTH_HOST:HEALTH_PORT): {exc.strerror or exc}"
            ) from None
        background: list[asyncio.Task[None]] = [asyncio.create_task(w.run()) for w in workers]
        if settings.dispatcher_enabled:
            from worker.runtime.dispatcher import Dispatcher

            dispatcher = Dispatcher(client, convex, settings)
            background.append(asyncio.create_task(dispatcher.run(stop)))
        log.info(
            "worker started",
            task_queue=settings.temporal_task_queue,
            own_task_queue=settings.worker_task_queue,
            namespace=client.namespace,
            temporal_address=client.service_client.config.target_host,
            convex_url=settings.resolved_convex_url,
            health_port=health.port,
            metrics_port=settings.metrics_port,
            dispatcher=settings.dispatcher_enabled,
        )
        if on_started is not None:
            on_started(health.port)
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stop_task, *background], return_when=asyncio.FIRST_COMPLETED)
        health.shutting_down = True
        log.info("worker stopping", grace_seconds=settings.shutdown_grace_seconds)
        stop.set()
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*background, return_exceptions=True)
        await health.stop()
        for task in done:
            error = None if task is stop_task else task.exception()
            if error is not None:
                raise _failure(error)
        log.info("worker stopped")


class WorkerFailed(RuntimeError):
    """The worker (or its dispatcher) stopped on an error; logged in full, summed up here."""


def _failure(error: BaseException) -> Exception:
    """What a failed poller or dispatcher task means to the operator, as one exception: it is
    logged with its traceback (a JSON line) and summed up as WorkerFailed. (A namespace the
    server does not have is refused before any poller starts: ``check_namespace``.)"""
    text = str(error)
    log.error("worker failed", error=f"{type(error).__name__}: {text}", exc_info=error)
    first = (text.strip().splitlines() or [type(error).__name__])[0][:300]
    return WorkerFailed(f"the worker stopped on an error: {first}")
