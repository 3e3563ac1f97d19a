"""Entry point: ``python -m tools.bench [--quick] [--keep] ...`` (``make bench``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from pydantic import SecretStr

from activities.storage import FileStore
from tools.bench import __doc__ as BENCH_DOC
from tools.bench.client import bench_convex_client
from tools.bench.measure import Memory, descendants, proc_status_kib, row, section
from tools.bench.persistence import bench_persistence
from tools.bench.real_jobs import bench_real_jobs
from tools.bench.sandbox import bench_sandbox
from tools.bench.stack import FULL, QUICK, ROOT, BenchError, Sizes, Stack
from tools.bench.workspaces import bench_workspaces
from tools.convex_proxy import FlakyProxy
from tools.standins.activities import NoConvexPersistence, Scenario, StandinJobActivities
from worker.factories import convex_client
from worker.local.local_convex import DEV_ADMIN_KEY, RunningBackend, start_local_backend
from worker.local.processes import ManagedProcess, start_temporal_dev_server, stop_process
from worker.runtime.temporal_client import connect_temporal
from worker.runtime.workers import run_worker
from worker.settings import load_settings


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
    """Every section; with ``--only sandbox`` the stack and section 6 alone."""
    started = time.monotonic()
    base = _run_dir()
    only_sandbox = args.only == "sandbox"
    _header(args, base)
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
        proxy = FlakyProxy("127.0.0.1", backend.port)
        await proxy.start()
        stack = Stack(temporal, backend, base, proxy)
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
                "allow_local_repos": True,
            }
        )
        async with convex_client(settings) as convex:
            client = await connect_temporal(settings, identity="jangar-bench")
            if not only_sandbox:
                await bench_convex_client(convex, backend.url, sizes)
                await bench_persistence(stack, client, convex, settings, sizes, mem)
                await bench_real_jobs(stack, client, convex, settings, sizes, mem)
                backend_memory(backend, mem)
                mem.add("Temporal dev server: peak RSS", proc_status_kib(temporal.pid, "VmHWM"))
                driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                mem.add("bench driver (this process): peak RSS", driver)
                section("4. Memory (VmHWM from /proc; MiB = 1024 KiB)")
                for label, value, note in mem.rows:
                    row(label, value, "MiB", note)
            await bench_sandbox(stack, client, convex, settings, sizes)
        ok = True
    finally:
        if stack is not None:
            # Together and off the event loop: the proxy they reach Convex through runs on it.
            await asyncio.gather(
                *(asyncio.to_thread(stop_process, proc, 15) for proc in stack.workers)
            )
            await stack.proxy.stop()
        if backend is not None:
            backend.stop()
        if temporal is not None:
            temporal.stop()
        if not ok:
            print(f"\nbench did not finish; logs kept in {base}", file=sys.stderr)
    # Section 5 needs no server: it runs once they are stopped, so their idle CPU stays out.
    await _workspaces_then_clean(args, base, sizes, run=not only_sandbox)
    print(f"\ntotal {time.monotonic() - started:.1f} s (servers started and stopped by PID)")


def _run_dir() -> Path:
    runs = ROOT / ".jangar" / "bench"
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))


def _header(args: argparse.Namespace, base: Path) -> None:
    only = f" --only {args.only}" if args.only else ""
    print(
        f"jangar bench{only} ({'quick' if args.quick else 'full'}): {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f}; data {base}"
    )


async def _workspaces_then_clean(
    args: argparse.Namespace, base: Path, sizes: Sizes, *, run: bool
) -> None:
    """Section 5 (when ``run``), then the run's data removed unless ``--keep`` or it failed."""
    ok = False
    try:
        if run:
            await bench_workspaces(base, sizes)
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        elif not ok:
            print(f"\nbench did not finish; data kept in {base}", file=sys.stderr)


async def bench_only(args: argparse.Namespace, sizes: Sizes) -> None:
    """One section alone (``--only``), for the sections that need no local stack."""
    started = time.monotonic()
    base = _run_dir()
    _header(args, base)
    await _workspaces_then_clean(args, base, sizes, run=True)
    print(f"\ntotal {time.monotonic() - started:.1f} s")


def worker_child(kind: str) -> int:
    """A worker process for section 2: ``run_worker`` with STAND-IN job activities.

    Everything else is the production worker (both pollers, health server, interceptors, the
    pooled Convex client); only the activity sets passed to it differ: the job activities are
    ``StandinJobActivities`` and, for ``no-convex``, the persistence activities are
    ``NoConvexPersistence``.
    """
    if kind not in ("standin-jobs", "no-convex"):
        raise SystemExit(f"unknown worker kind {kind!r}")
    asyncio.run(
        run_worker(
            load_settings(),
            job_activities=lambda convex: (
                StandinJobActivities(Scenario(checks=("true",)), files=FileStore(convex))
                if kind == "standin-jobs"
                else StandinJobActivities(Scenario(checks=("true",)))
            ),
            persistence_activities=(lambda _: NoConvexPersistence())
            if kind == "no-convex"
            else None,
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(BENCH_DOC or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, about 30 s")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    parser.add_argument("--calls", type=int, help="Convex client calls per measurement")
    parser.add_argument("--jobs", type=int, help="stand-in jobs per worker at --concurrency")
    parser.add_argument("--concurrency", type=int, help="jobs in flight in the concurrent phase")
    parser.add_argument("--real-jobs", type=int, help="whole jobs to take the median of")
    parser.add_argument(
        "--sandbox-jobs", type=int, help="section 6: jobs with the sandbox and as many without"
    )
    parser.add_argument(
        "--only",
        choices=("workspaces", "sandbox"),
        help="run one section alone: workspaces (section 5, no stack) or sandbox (section 6)",
    )
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
        "sandbox_jobs": ("--sandbox-jobs", args.sandbox_jobs),
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
        only_workspaces = args.only == "workspaces"
        asyncio.run(bench_only(args, sizes) if only_workspaces else bench(args, sizes))
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
    sys.exit(main())
