"""The worker process: Temporal workers, health endpoints, metrics and graceful shutdown.

Any number of these run as pods on the task queue; each runs workflows and every activity, and
no job is bound to the pod that started it (a step rebuilds its workspace from its checkpoint
wherever it runs). On SIGTERM the pod turns unready and stops polling; a running agent or check
hands itself over at once (``WorkerShutdown``: another pod takes the step from its checkpoint),
shorter steps get ``SHUTDOWN_GRACE_SECONDS`` to finish, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client
from temporalio.worker import Worker

from activities.convex_client import ConvexClient, ConvexClientError
from activities.sandbox import OFF_WARNING, SandboxUnavailable, probe
from activities.storage import FileStore
from activities.workspace import Workspaces
from worker import factories
from worker.logging import configure_logging, get_logger
from worker.runtime.health import HealthServer
from worker.runtime.log_context import LogContextInterceptor
from worker.runtime.registry import workflows
from worker.runtime.temporal_client import check_namespace, connect_temporal, worker_runtime
from worker.settings import Settings, SettingsError
from workflows.models import records_task_queue
from workflows.policies import HEARTBEAT_THROTTLE

log = get_logger(__name__)

SWEEP_SECONDS = 600.0
"""How often a worker removes expired workspaces, measures its disk use and takes its share of
the sweep of Convex storage (a pass runs at most this often in the whole deployment)."""


class ActivitySet(Protocol):
    """An object whose bound methods are activities (``JobActivities``, a stand-in set...)."""

    def all(self) -> Sequence[Callable[..., Any]]: ...


JobFactory = Callable[[ConvexClient], ActivitySet]
"""Builds the job activities once the process's Convex client exists."""
PersistenceFactory = Callable[[ConvexClient], ActivitySet]
"""Builds the persistence activities once the process's Convex client exists."""


def build_workers(
    client: Client,
    *,
    settings: Settings,
    job_activities: ActivitySet,
    persistence_activities: ActivitySet,
) -> list[Worker]:
    """Two pollers: the jobs and their records.

    The first serves ``Settings.temporal_task_queue``: the workflows and the job activities.
    The second serves the records' queue (``records_task_queue``): the Convex writes, with
    slots of their own, so retries against a slow or unreachable Convex never hold the slots
    a job step waits for. The activity sets are arguments so that tests and the benchmark
    register stand-ins the same way production registers the real ones (``worker.factories``).
    """
    common: dict[str, Any] = {
        "interceptors": [LogContextInterceptor()],
        "max_concurrent_activities": settings.max_concurrent_activities,
        "graceful_shutdown_timeout": timedelta(seconds=settings.shutdown_grace_seconds),
        "identity": settings.worker_id,
        "max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
    }
    jobs = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=workflows(),
        activities=list(job_activities.all()),
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        **common,
    )
    records = Worker(
        client,
        task_queue=records_task_queue(settings.temporal_task_queue),
        activities=list(persistence_activities.all()),
        **common,
    )
    return [jobs, records]


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM (Kubernetes) and SIGINT (Ctrl-C) ask for a graceful stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def check_sandbox(settings: Settings) -> None:
    """Refuse to start when the sandbox does not work, unless it is explicitly off."""
    config = factories.sandbox_config(settings)
    if not config.enabled:
        log.warning("sandbox off", warning=OFF_WARNING)
        return
    try:
        await asyncio.to_thread(probe, config)
    except SandboxUnavailable as exc:
        raise SettingsError(f"JANGAR_SANDBOX: {exc}") from None


async def sweep_disk(
    workspaces: Workspaces, retention_seconds: float, report: Callable[[int], None]
) -> None:
    """Every SWEEP_SECONDS: remove workspaces untouched for the retention, report disk use."""
    while True:
        removed = await asyncio.to_thread(workspaces.sweep, retention_seconds=retention_seconds)
        if removed:
            log.info("workspaces removed", count=len(removed), retention_seconds=retention_seconds)
        report(await asyncio.to_thread(workspaces.disk_bytes))
        await asyncio.sleep(SWEEP_SECONDS)


async def sweep_storage(files: FileStore, orphan_age_seconds: float) -> None:
    """Every SWEEP_SECONDS: this worker's share of the deployment's sweep of Convex storage
    (a finished run's checkpoints, uploads no record names); a failure waits for the next."""
    while True:
        try:
            totals = await files.sweep(
                orphan_age_seconds=orphan_age_seconds, every_seconds=SWEEP_SECONDS
            )
        except ConvexClientError as exc:
            log.warning("storage sweep failed", error=str(exc), retry_in=SWEEP_SECONDS)
        else:
            if totals.released or totals.deleted:
                log.info("stored files removed", **totals.model_dump())
        await asyncio.sleep(SWEEP_SECONDS)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    job_activities: JobFactory | None = None,
    persistence_activities: PersistenceFactory | None = None,
) -> None:
    """Run until ``stop`` is set (or a signal arrives), then shut down gracefully.

    ``on_started`` is called with the bound health port once the worker polls (``jangar dev``
    prints it; with HEALTH_PORT=0 only then is it known). ``job_activities`` and
    ``persistence_activities`` build stand-in activity sets instead of the real ones (the
    benchmark's no-Convex baseline); everything else is the production worker.
    """
    configure_logging(settings.log_level, settings.log_format)
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    if job_activities is None:
        await check_sandbox(settings)
    runtime = worker_runtime(settings)
    client = await connect_temporal(settings, runtime=runtime)
    await check_namespace(client)
    async with factories.convex_client(settings) as convex:
        jobs = (job_activities or (lambda c: factories.job_activities(settings, c)))(convex)
        workers = build_workers(
            client,
            settings=settings,
            job_activities=jobs,
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
        chores: list[asyncio.Task[None]] = []
        spaces = getattr(jobs, "workspaces", None)
        if isinstance(spaces, Workspaces):
            gauge = runtime.metric_meter.create_gauge(
                "jangar_disk_bytes", "Bytes of the worker's workspaces and job files", "By"
            )
            chores.append(
                asyncio.create_task(
                    sweep_disk(
                        spaces, settings.workspace_retention_hours * 3600, lambda b: gauge.set(b)
                    )
                )
            )
        if persistence_activities is None:  # the real Convex: keep its storage tidy too
            chores.append(
                asyncio.create_task(
                    sweep_storage(FileStore(convex), settings.storage_orphan_hours * 3600)
                )
            )
        if settings.dispatcher_enabled:
            from worker.runtime.dispatcher import Dispatcher

            dispatcher = Dispatcher(client, convex, settings)
            background.append(asyncio.create_task(dispatcher.run(stop)))
        log.info(
            "worker started",
            task_queue=settings.temporal_task_queue,
            records_task_queue=records_task_queue(settings.temporal_task_queue),
            namespace=client.namespace,
            temporal_address=client.service_client.config.target_host,
            convex_url=settings.resolved_convex_url,
            health_port=health.port,
            metrics_port=settings.metrics_port,
            dispatcher=settings.dispatcher_enabled,
            sandbox=settings.sandbox,
        )
        if on_started is not None:
            on_started(health.port)
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stop_task, *background], return_when=asyncio.FIRST_COMPLETED)
        health.shutting_down = True
        log.info("worker stopping", grace_seconds=settings.shutdown_grace_seconds)
        stop.set()
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*background, *chores, return_exceptions=True)
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
