"""Section 6: a normal job with the job sandbox and without it.

Two real ``jangar worker`` processes, identical but for ``JANGAR_SANDBOX`` (``bwrap``: every
agent and check under bubblewrap; ``off``: run as the worker's user), each on its own task
queue, run the job of section 3 (the STAND-IN agent, real git against a local bare repository,
one check, here naming the interpreter by its path). After one warm-up job each, the jobs
alternate between the two workers in ABBA order, so a drift in the machine's load lands on both
sides alike. Prints, for each side, the
median (and range) of the whole job's wall time and of the two sandboxed steps alone (the
``run_agent`` and ``run_check`` activities, from started to completed in the workflow's
history: the part of the job the sandbox can slow down), and the relative differences of the
medians; asserts nothing.

``python -m tools.bench --only sandbox [--quick] [--sandbox-jobs N]`` runs this section alone
(with the local stack).
"""

from __future__ import annotations

import asyncio
import shlex
import statistics
import sys
from datetime import datetime

from temporalio.client import Client

from activities.convex_client import ConvexClient
from tools.bench.measure import row, section
from tools.bench.stack import (
    JobOutcome,
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

MODES = ("bwrap", "off")


async def bench_sandbox(
    stack: Stack, client: Client, convex: ConvexClient, settings: Settings, sizes: Sizes
) -> None:
    agent = [PYTHON, str(STANDIN), "exec", "--json"]
    workers = {}
    steps: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode in MODES:
        queue = f"bench-sandbox-{mode}"
        env = child_env(
            stack,
            queue=queue,
            data_dir=stack.base / f"data-sandbox-{mode}",
            extra={"JANGAR_CODEX_COMMAND": shlex.join(agent), "JANGAR_SANDBOX": mode},
        )
        log = spawn_worker(
            stack, [sys.executable, "-m", "worker.cli", "worker"], env, f"worker-{mode}.log"
        )
        job_settings = settings.model_copy(update={"temporal_task_queue": queue})
        workers[mode] = (stack.workers[-1], log, job_settings)
    section(
        "6. The job sandbox: a whole job with JANGAR_SANDBOX=bwrap and with off",
        "two `jangar worker` processes, identical but for JANGAR_SANDBOX; the job of section 3;"
        " one warm-up each, then ABBA order",
        "the sandbox's own cost is per process: bwrap + namespaces + mounts, for the agent and"
        " the check (tools/sandbox_overhead.py measures one); the aim is within 10%",
    )
    repo = str(make_sample_repo(stack.base / "repo-sandbox"))
    # The interpreter by its real path, not `python3` from PATH: the sandbox shows only system
    # and configured paths, so a PATH entry under /root (pyenv's shims, a bash script that
    # costs ~0.2 s a call) would be skipped inside it and taken outside, and the unsandboxed
    # side would be slower for a reason that is not the sandbox.
    checks = [f"{shlex.quote(PYTHON)} -m py_compile greet.py"]
    prompt = "Add a NOTES.md that explains what greet() does."
    n = sizes.sandbox_jobs
    orders = await new_orders(convex, 2 * (n + 1), repo=repo, prompt=prompt, checks=checks)
    outcomes: dict[str, list[JobOutcome]] = {mode: [] for mode in MODES}

    async def one(mode: str) -> JobOutcome:
        proc, log, job_settings = workers[mode]
        outcome: JobOutcome = await guarded(
            proc, log, run_job(client, convex, job_settings, orders.pop()), 180
        )
        steps[mode].append(await sandboxed_step_seconds(client, outcome.workflow_id))
        return outcome

    warm = [await one(mode) for mode in MODES]
    for mode in MODES:
        steps[mode].clear()  # the warm-up's steps are not counted either
    for i in range(n):
        for mode in MODES if i % 2 == 0 else tuple(reversed(MODES)):
            outcomes[mode].append(await one(mode))
    medians = {}
    for mode in MODES:
        times = [o.seconds for o in outcomes[mode]]
        medians[mode] = statistics.median(times)
        row(
            f"JANGAR_SANDBOX={mode}: wall time per job, median of {len(times)}",
            medians[mode],
            "s",
            f"min {min(times):.2f}, max {max(times):.2f}",
        )
    ratio = medians["bwrap"] / medians["off"]
    row("whole job: sandbox / no sandbox (medians)", ratio, "x", f"{(ratio - 1) * 100:+.1f}%")
    step_medians = {}
    for mode in MODES:
        step_medians[mode] = statistics.median(steps[mode])
        row(
            f"JANGAR_SANDBOX={mode}: run_agent + run_check activities, median",
            step_medians[mode],
            "s",
            f"min {min(steps[mode]):.2f}, max {max(steps[mode]):.2f}",
        )
    step_ratio = step_medians["bwrap"] / step_medians["off"]
    row(
        "sandboxed steps: sandbox / no sandbox (medians)",
        step_ratio,
        "x",
        f"{(step_ratio - 1) * 100:+.1f}%",
    )
    paired = [
        b.seconds - o.seconds for b, o in zip(outcomes["bwrap"], outcomes["off"], strict=True)
    ]
    row("median of the paired differences (bwrap - off)", statistics.median(paired) * 1000, "ms")
    report_failures([*warm, *outcomes["bwrap"], *outcomes["off"]])
    for proc, _log, _settings in workers.values():
        await asyncio.to_thread(stop_process, proc, 15)  # the proxy runs on this loop


async def sandboxed_step_seconds(client: Client, workflow_id: str) -> float:
    """Seconds the job's run_agent and run_check activities ran (started to completed, server
    time), summed over the job."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds: dict[int, str] = {}
    started: dict[int, datetime] = {}
    total = 0.0
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            kinds[event.event_id] = kind
        elif event.HasField("activity_task_started_event_attributes"):
            scheduled = event.activity_task_started_event_attributes.scheduled_event_id
            started[scheduled] = event.event_time.ToDatetime()
        elif event.HasField("activity_task_completed_event_attributes"):
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            if kinds.get(scheduled) in ("run_agent", "run_check") and scheduled in started:
                total += (event.event_time.ToDatetime() - started[scheduled]).total_seconds()
    return total
