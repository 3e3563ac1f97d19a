"""Section 3: whole jobs as `make run` runs them (STAND-IN agent, real git, one check)."""

from __future__ import annotations

import asyncio
import shlex
import statistics
import sys

from temporalio.client import Client

from activities.convex_client import ConvexClient
from tools.bench.measure import Memory, proc_status_kib, row, section
from tools.bench.stack import (
    Sizes,
    Stack,
    child_env,
    guarded,
    new_orders,
    report_failures,
    run_job,
    spawn_worker,
)
from tools.run_demo import PYTHON, STANDIN, make_sample_repo
from worker.local.processes import stop_process
from worker.settings import Settings


async def bench_real_jobs(
    stack: Stack,
    client: Client,
    convex: ConvexClient,
    settings: Settings,
    sizes: Sizes,
    mem: Memory,
) -> None:
    queue = "bench-real"
    agent = [PYTHON, str(STANDIN), "exec", "--json"]
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
    calls_before = stack.proxy.requests
    for order in orders[1:]:
        outcomes.append(await guarded(proc, log, run_job(client, convex, job_settings, order), 180))
    row(
        "Convex calls per job (HTTP requests: writes, live events, uploads)",
        (stack.proxy.requests - calls_before) / max(len(outcomes), 1),
        "calls",
    )
    times = [o.seconds for o in outcomes]
    row(f"wall time per job, median of {len(times)}", statistics.median(times), "s")
    row("wall time per job, min", min(times), "s")
    row("wall time per job, max", max(times), "s")
    report_failures([warm, *outcomes])
    mem.add("worker, real jobs: peak RSS", proc_status_kib(proc.pid, "VmHWM"), "agent/git excluded")
    await asyncio.to_thread(stop_process, proc, 15)  # the proxy runs on this loop
