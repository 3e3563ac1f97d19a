"""Output and measurement helpers: table rows, percentiles, timings, CPU and memory from /proc."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
