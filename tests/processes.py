"""Processes seen through /proc: alive or gone, and found by a marker in their environment.

Tests run as root, so every process's environment is readable, the sandboxed ones included
(whatever their pid inside their own namespace).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie, or one being reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def gone_soon(pid: int, within: float = 2.0) -> bool:
    """True once ``pid`` is gone; SIGKILL is delivered asynchronously, so allow a moment."""
    deadline = time.monotonic() + within
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def environ(pid: int) -> list[bytes]:
    """The ``NAME=value`` entries of a process's environment (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def pids_with_env(name: str, value: str, *, prefix: bool = False) -> dict[int, str]:
    """Live processes whose environment has ``name=value`` (``name=value...`` with
    ``prefix``): pid -> the whole value."""
    wanted = f"{name}={value}".encode()
    found: dict[int, str] = {}
    for pid in all_pids():
        for item in environ(pid):
            if (item.startswith(wanted) if prefix else item == wanted) and pid_alive(pid):
                found[pid] = item.decode(errors="replace").split("=", 1)[1]
    return found
