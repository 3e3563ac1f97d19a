"""Section 2: what persistence costs a job: real Convex writes against no-op STAND-INS."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.convex_client import ConvexClient
from tools.bench.measure import (
    Memory,
    cpu_seconds,
    descendants,
    machine_busy_seconds,
    ms,
    pct,
    proc_status_kib,
    row,
    section,
)
from tools.bench.stack import (
    FAKE_REPO,
    HistoryStats,
    JobOutcome,
    Sizes,
    Stack,
    child_env,
    guarded,
    history_stats,
    new_orders,
    report_failures,
    run_job,
    run_jobs,
    spawn_worker,
)
from worker.local.processes import stop_process
from worker.settings import Settings


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


BEFORE = {
    "before: persistence activities (Convex writes) per job": 29,
    "before: activities per job, all": 34,
}
"""The same stand-in job (one check, two progress events, log and diff) before the state
changes moved into the transitions' own mutations and progress into batches: each Convex write
was its own activity and its own call."""


def start_lane(stack: Stack, settings: Settings, kind: str, label: str) -> Lane:
    queue = f"bench-{kind}"
    env = child_env(stack, queue=queue, data_dir=stack.base / f"data-{kind}", extra={})
    argv = [sys.executable, "-m", "tools.bench", "--worker-child", kind]
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
        "job steps from tools/standins/activities.py; real worker processes (run_worker, "
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
            for label, value in BEFORE.items():
                row(label, value, "", "measured at 0387e4c, before issue 10")

    # Concurrency 1: the lanes alternate job by job; concurrency N: block by block.
    seq = {lane.kind: Tally() for lane in lanes}
    for i in range(1, 1 + sizes.seq_jobs):
        for lane in lanes:
            calls_before = stack.proxy.requests
            await run_block(stack, client, convex, lane, [orders[lane.kind][i]], 1, seq[lane.kind])
            if i == 1 and lane is real:  # a job alone, past the worker's start-up calls
                calls = stack.proxy.requests - calls_before
                row("Convex calls per job (HTTP requests: writes, reads, uploads)", calls, "calls")
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
        await asyncio.to_thread(stop_process, lane.proc, 15)  # the proxy runs on this loop

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
