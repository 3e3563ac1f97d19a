"""The sandbox, attacked: each attack runs under bwrap (it must fail) and, paired, with the
sandbox off or absent (it succeeds: the test shows what the sandbox is for).

Attacks that target "the worker" target a disposable stand-in worker process
(``tests.activities.sandbox_child``), never the pytest process. Every process a test leaves
behind is killed by pid. Only a missing ``bwrap`` skips the sandboxed half.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from activities.process import ProcessResult, child_env, run_process
from activities.prompt_input import stdin_prompt_argv, write_prompt_file
from activities.sandbox import (
    SandboxConfig,
    SandboxMode,
    SandboxPolicy,
    SandboxUnavailable,
    bwrap_argv,
    parse_mode,
    private_paths,
    probe,
    resolve_program,
    sandbox_env,
    step_dirs,
)
from tests.activities.conftest import exists, read
from tests.processes import gone_soon

ROOT = Path(__file__).resolve().parents[2]
HAVE_BWRAP = shutil.which("bwrap") is not None
requires_bwrap = pytest.mark.skipif(
    not HAVE_BWRAP,
    reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap (make setup does it"
    " when run as root)",
)
BWRAP = pytest.param("bwrap", marks=requires_bwrap, id="bwrap")
WORKER_HOME = Path(os.environ.get("HOME", "/root")).resolve()
PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, not the venv's symlink
PYTHON_PREFIX = Path(sys.base_prefix).resolve()
STANDIN = ROOT / "tools" / "standins" / "codex_standin.py"
OFF = pytest.param("off", id="off")


@dataclass
class Job:
    """A worker data directory with two jobs' workspaces; the step runs in job A's."""

    root: Path
    data: Path
    workspace: Path
    other: Path
    private: Path

    def config(self, mode: SandboxMode) -> SandboxConfig:
        # The test's whole tmp dir is exposed read-only, as an operator exposing a parent of
        # the data directory would: the data directory must still be hidden.
        return SandboxConfig(mode=mode, extra_read_only=(self.root,), hidden=(self.data,))

    def policy(
        self, mode: SandboxMode, *, network: bool = False, step: str = "check-000"
    ) -> SandboxPolicy:
        home, tmp = step_dirs(self.private, step)
        return self.config(mode).policy(
            workspace=self.workspace, home=home, tmp=tmp, network=network
        )


@pytest.fixture
def job(tmp_path: Path) -> Job:
    root = tmp_path.resolve()
    data = root / "data"
    workspace = data / "workspaces" / "job-a"
    other = data / "workspaces" / "job-b"
    for path in (workspace, other):
        path.mkdir(parents=True)
    return Job(root, data, workspace, other, data / "private" / "job-a")


async def run_step(
    job: Job,
    script: str,
    mode: SandboxMode | None,
    *,
    network: bool = False,
    time_limit: float = 10,
    kill_grace: float = 0.5,
    log_limit: int | None = 1024 * 1024,
) -> tuple[ProcessResult, str]:
    """Run ``/bin/sh -c script`` as a check of job A would run; its result and its log."""
    log_path = job.root / "logs" / f"{secrets.token_hex(4)}.log"
    result = await run_process(
        ["/bin/sh", "-c", script],
        cwd=job.workspace,
        env=child_env(),
        time_limit=time_limit,
        log_path=log_path,
        kill_grace=kill_grace,
        sandbox=None if mode is None else job.policy(mode, network=network),
        log_limit=log_limit,
    )
    return result, read(log_path)


def pids_running(program: str, arg: str) -> list[int]:
    """Host pids of live processes running ``program`` with the argument ``arg``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        live = state not in ("Z", "X")
        if live and os.path.basename(argv[0]) == program.encode() and arg.encode() in argv[1:]:
            found.append(int(name))
    return found


@pytest.fixture
def leftovers() -> Iterator[list[str]]:
    """Tokens of ``sleep TOKEN`` processes a test may leave; killed by pid at teardown."""
    tokens: list[str] = []
    yield tokens
    for token in tokens:
        for pid in pids_running("sleep", token):
            os.kill(pid, signal.SIGKILL)


def sleep_token() -> str:
    """A unique, valid ``sleep`` duration (a bit over an hour) to find a process by."""
    return f"4321.{secrets.randbelow(10**6):06d}"


async def run_disposable_worker(
    job: Job, mode: SandboxMode, script: str, env: dict[str, str]
) -> tuple[int, str, str]:
    """Start the stand-in worker with ``env``; (its exit code, its stdout, the step's log)."""
    policy = job.policy(mode)
    log_path = job.root / "logs" / "disposable.log"
    spec = {
        "mode": mode,
        "extra_read_only": [str(job.root)],
        "hidden": [str(job.data)],
        "workspace": str(policy.workspace),
        "home": str(policy.home),
        "tmp": str(policy.tmp),
        "script": script,
        "log": str(log_path),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.activities.sandbox_child",
        json.dumps(spec),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, _stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), read(log_path) if exists(log_path) else ""


# --- unit: configuration and command line -------------------------------------------------


def test_parse_mode_defaults_to_bwrap_and_off_is_explicit() -> None:
    assert parse_mode(None) == parse_mode("") == parse_mode(" BWRAP ") == "bwrap"
    assert parse_mode("off") == "off"
    with pytest.raises(ValueError, match="bwrap, off"):
        parse_mode("none")


def test_config_refuses_root_in_the_sandbox_and_relative_paths() -> None:
    with pytest.raises(ValueError, match="unprivileged"):
        SandboxConfig(uid=0)
    with pytest.raises(ValueError, match="absolute"):
        SandboxConfig(extra_read_only=(Path("opt/tool"),))


def test_bwrap_argv_builds_the_documented_sandbox(job: Job) -> None:
    secret = f"sk-{secrets.token_hex(8)}"
    policy = job.policy("bwrap")
    env = sandbox_env(policy, {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": secret})
    argv = bwrap_argv(policy, ["/bin/sh", "-c", "true"], job.workspace, env)
    joined = shlex.join(argv)
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--uid") + 1] == "1000" and argv[argv.index("--gid") + 1] == "1000"
    assert "--proc /proc" in joined and "--dev /dev" in joined
    assert "--ro-bind /usr /usr" in joined
    # The data dir is hidden (an empty tmpfs), then the workspace is bound writable on top,
    # then the tmpfs and the root are made read-only.
    pairs = list(itertools.pairwise(argv))
    hide = pairs.index(("--tmpfs", str(job.data)))
    bind = pairs.index(("--bind", str(job.workspace)))
    assert pairs.index(("--ro-bind", str(job.root))) < hide < bind
    assert f"--remount-ro {job.data}" in joined and "--remount-ro / " in joined
    assert argv[argv.index("--chdir") + 1] == str(job.workspace)
    assert argv[-4:] == ["--", "/bin/sh", "-c", "true"]
    # The environment is bwrap's own, never its argv (world-readable in /proc/<pid>/cmdline).
    assert secret not in joined and "--setenv" not in argv
    assert env["HOME"] == str(policy.home) and env["TMPDIR"] == str(policy.tmp)
    with_net = bwrap_argv(job.policy("bwrap", network=True), ["true"], job.workspace, env)
    assert "--share-net" in with_net


def test_private_files_are_found_and_hidden(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "ssl" / "private").mkdir(parents=True)
    (etc / "ssl" / "private" / "key.pem").write_text("key")
    (etc / "shadow").write_text("root:x")
    (etc / "hosts").write_text("127.0.0.1 localhost")
    (etc / "ssl" / "private").chmod(0o700)
    (etc / "shadow").chmod(0o640)
    found = private_paths([etc])
    assert sorted(found) == sorted([etc / "shadow", etc / "ssl" / "private"])
    assert stat.S_IMODE((etc / "hosts").stat().st_mode) & stat.S_IROTH


def test_step_dirs_are_fresh_and_private(tmp_path: Path) -> None:
    home, tmp = step_dirs(tmp_path / "private", "agent")
    (home / ".bashrc").write_text("planted")
    home2, tmp2 = step_dirs(tmp_path / "private", "agent")
    assert (home2, tmp2) == (home, tmp) and not any(home.iterdir())
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    with pytest.raises(ValueError):
        step_dirs(tmp_path, "../escape")


def test_a_program_the_sandbox_cannot_see_is_reported(job: Job, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"tool-{secrets.token_hex(4)}"
    outside.mkdir()
    try:
        program = outside / "tool"
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
        policy = job.policy("bwrap")
        with pytest.raises(FileNotFoundError, match="outside the sandbox"):
            resolve_program(policy, str(program), job.workspace, {})
        with pytest.raises(FileNotFoundError):
            resolve_program(policy, "no-such-program-anywhere", job.workspace, {"PATH": "/bin"})
        assert resolve_program(policy, "sh", job.workspace, {"PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(outside)


def test_probe_without_bubblewrap_says_how_to_fix() -> None:
    with pytest.raises(SandboxUnavailable) as info:
        probe(SandboxConfig(bwrap="/nonexistent/bwrap"))
    message = str(info.value)
    assert "apt-get install bubblewrap" in message and "JANGAR_SANDBOX=off" in message


async def test_a_step_without_bubblewrap_fails_as_sandbox_unavailable(job: Job) -> None:
    home, tmp = step_dirs(job.private, "check-000")
    policy = SandboxConfig(bwrap="/nonexistent/bwrap").policy(
        workspace=job.workspace, home=home, tmp=tmp, network=False
    )
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await run_process(
            ["/bin/true"], cwd=job.workspace, env=child_env(), time_limit=5, sandbox=policy
        )


def test_probe_explains_missing_user_namespaces(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "bubblewrap 0.8.0"; exit 0; fi\n'
        "echo 'bwrap: No permissions to creating new namespace, likely because the kernel"
        " does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable) as info:
        probe(SandboxConfig(bwrap=str(fake)))
    message = str(info.value)
    assert "user namespaces" in message and "max_user_namespaces" in message
    assert "No permissions to creating new namespace" in message  # bwrap's own words
    assert "JANGAR_SANDBOX=off" in message


@requires_bwrap
def test_probe_passes_where_bwrap_works() -> None:
    assert "works" in probe(SandboxConfig())
    assert "off" in probe(SandboxConfig(mode="off"))


# --- attacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [BWRAP, OFF])
async def test_worker_secrets_in_proc(job: Job, mode: SandboxMode) -> None:
    canary = f"canary-{secrets.token_hex(12)}"
    script = (
        "tr '\\0' '\\n' < /proc/$PPID/environ; tr '\\0' '\\n' < /proc/1/environ;"
        " for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null;"
        " cat /proc/$PPID/cmdline /proc/1/cmdline; echo SCANNED"
    )
    env = {**os.environ, "JANGAR_TEST_CANARY_TOKEN": canary}
    code, stdout, log = await run_disposable_worker(job, mode, script, env)
    assert code == 0, stdout
    assert "SCANNED" in log
    if mode == "bwrap":
        assert canary not in log, "the sandbox leaked the worker's environment"
    else:
        assert canary in log  # unsandboxed, /proc/$PPID/environ is the worker's


@pytest.mark.parametrize("mode", [BWRAP, OFF])
async def test_other_jobs_workspace(job: Job, mode: SandboxMode) -> None:
    canary = f"other-job-{secrets.token_hex(12)}"
    (job.other / "secret.txt").write_text(canary)
    script = (
        f"cat {job.other}/secret.txt ../job-b/secret.txt; echo pwned > {job.other}/pwned;"
        f' echo "listing: $(ls {job.data}/workspaces | tr "\\n" " ")"; echo mine > own.txt;'
        " echo DONE"
    )
    _result, log = await run_step(job, script, mode)
    assert "DONE" in log and read(job.workspace / "own.txt") == "mine\n"
    if mode == "bwrap":
        assert canary not in log and "listing: job-a \n" in log
        assert not exists(job.other / "pwned")
    else:
        assert canary in log and "listing: job-a job-b \n" in log
        assert exists(job.other / "pwned")


@pytest.mark.parametrize("mode", [BWRAP, OFF])
async def test_signal_the_worker(job: Job, mode: SandboxMode) -> None:
    script = "kill -9 $PPID; kill -9 $WORKER_PID; sleep 0.2; echo STILL-HERE"
    code, stdout, log = await run_disposable_worker(job, mode, script, dict(os.environ))
    if mode == "bwrap":
        assert code == 0 and json.loads(stdout)["exit_code"] == 0
        assert "STILL-HERE" in log
    else:
        assert code == -signal.SIGKILL, "unsandboxed, a check can kill the worker"


@pytest.mark.parametrize("mode", [BWRAP, OFF])
async def test_fresh_home_and_no_worker_home(job: Job, mode: SandboxMode) -> None:
    script = (
        'echo "home=$HOME tmp=$TMPDIR"; ls -A "$HOME" | wc -l; touch "$TMPDIR/t" /tmp/t;'
        f" test -d {shlex.quote(str(WORKER_HOME))} && echo WORKER-HOME-VISIBLE; echo DONE"
    )
    _result, log = await run_step(job, script, mode)
    policy = job.policy(mode)
    assert f"home={policy.home} tmp={policy.tmp}" in log and "DONE" in log
    assert log.splitlines()[1].strip() == "0"  # a fresh, empty HOME
    if mode == "bwrap":
        assert "WORKER-HOME-VISIBLE" not in log
    else:
        assert "WORKER-HOME-VISIBLE" in log


@requires_bwrap
async def test_nothing_outlives_a_sandboxed_step(job: Job, leftovers: list[str]) -> None:
    detached, double_forked, cleared = sleep_token(), sleep_token(), sleep_token()
    leftovers += [detached, double_forked, cleared]
    # The double-forked and the env -i sleeps keep the step's stdout/stderr pipes open: the
    # runner must not wait for them (it would give up after 5 s of draining).
    script = (
        f"setsid sleep {detached} > /dev/null 2>&1 &"
        f" (setsid sh -c 'sleep {double_forked} &' &);"
        f" env -i setsid sleep {cleared} & sleep 0.3; echo started"
    )
    started = time.monotonic()
    result, log = await run_step(job, script, "bwrap")
    assert result.exit_code == 0 and "started" in log
    assert time.monotonic() - started < 3, "a pipe held by a leftover made the runner wait"
    for token in (detached, double_forked, cleared):
        assert not pids_running("sleep", token), f"sleep {token} outlived the step"


@requires_bwrap
async def test_time_limit_and_cancel_kill_the_whole_sandbox(job: Job, leftovers: list[str]) -> None:
    token = sleep_token()
    leftovers.append(token)
    script = f"setsid sleep {token} & sleep 60"
    started = time.monotonic()
    result, _log = await run_step(job, script, "bwrap", time_limit=0.5)
    assert result.timed_out and time.monotonic() - started < 5
    assert not pids_running("sleep", token)

    token2 = sleep_token()
    leftovers.append(token2)
    task = asyncio.create_task(run_step(job, f"setsid sleep {token2} & sleep 60", "bwrap"))
    for _ in range(200):
        if pids_running("sleep", token2):
            break
        await asyncio.sleep(0.02)
    assert pids_running("sleep", token2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pids_running("sleep", token2)


@requires_bwrap
async def test_sigterm_reaches_the_sandboxed_command_before_sigkill(job: Job) -> None:
    script = "trap 'echo graceful > stopped.txt; exit 0' TERM; sleep 60 & wait"
    started = time.monotonic()
    result, _log = await run_step(job, script, "bwrap", time_limit=0.3, kill_grace=5)
    assert result.timed_out
    assert read(job.workspace / "stopped.txt") == "graceful\n"
    assert time.monotonic() - started < 4  # it stopped on SIGTERM, not after the grace
    assert gone_soon(result.pid)


async def test_without_a_sandbox_detached_processes_survive(job: Job, leftovers: list[str]) -> None:
    """The attack the sandbox stops: today's process-group kill misses a setsid'd child."""
    token = sleep_token()
    leftovers.append(token)
    result, _log = await run_step(job, f"setsid sleep {token} > /dev/null 2>&1 & sleep 0.3", None)
    assert result.exit_code == 0
    assert pids_running("sleep", token), "expected the detached sleep to survive"


async def test_sandbox_off_sweeps_marked_leftovers_but_not_cleared_ones(
    job: Job, leftovers: list[str]
) -> None:
    """Sandbox off, the step's environment marker finds setsid'd and double-forked leftovers;
    one that clears its environment escapes (the documented gap)."""
    detached, double_forked, cleared = sleep_token(), sleep_token(), sleep_token()
    leftovers += [detached, double_forked, cleared]
    script = (
        f"setsid sleep {detached} > /dev/null 2>&1 &"
        f" (setsid sh -c 'sleep {double_forked} > /dev/null 2>&1 &' &);"
        f" env -i setsid sleep {cleared} > /dev/null 2>&1 & sleep 0.3"
    )
    result, _log = await run_step(job, script, "off")
    assert result.exit_code == 0
    assert not pids_running("sleep", detached) and not pids_running("sleep", double_forked)
    assert pids_running("sleep", cleared)  # the gap; the fixture kills it by pid


@pytest.mark.parametrize("mode", [BWRAP, OFF])
async def test_fifty_megabytes_of_output_are_capped(job: Job, mode: SandboxMode) -> None:
    limit = 1024 * 1024
    script = (
        "echo FIRST-LINE; yes \"$(printf '%0999d' 7)\" | head -c 52428800; echo; echo LAST-LINE"
    )
    result, log = await run_step(job, script, mode, log_limit=limit, time_limit=60)
    assert result.exit_code == 0
    lines = log.splitlines()
    assert lines[0] == "FIRST-LINE" and lines[-1] == "LAST-LINE"
    markers = [line for line in lines if line.startswith("[jangar] log cut here:")]
    assert len(markers) == 1 and "51" in markers[0] and "whole lines" in markers[0]
    assert len(log.encode()) <= limit + 300


async def test_without_a_cap_the_log_takes_all_fifty_megabytes(job: Job) -> None:
    script = "yes \"$(printf '%0999d' 7)\" | head -c 52428800"
    _result, log = await run_step(job, script, None, log_limit=None, time_limit=60)
    assert len(log) >= 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("mode", "network", "connects"),
    [
        pytest.param("bwrap", False, False, marks=requires_bwrap, id="bwrap-no-network"),
        pytest.param("bwrap", True, True, marks=requires_bwrap, id="bwrap-network"),
        pytest.param("off", False, True, id="off-policy-not-enforced"),
    ],
)
async def test_network_policy(job: Job, mode: SandboxMode, network: bool, connects: bool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        script = (
            f"if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null;"
            " then echo CONNECTED; else echo REFUSED; fi"
        )
        _result, log = await run_step(job, script, mode, network=network)
    assert ("CONNECTED" if connects else "REFUSED") in log, log


@requires_bwrap
async def test_agent_reads_a_large_prompt_from_a_file_on_stdin_in_the_sandbox(
    job: Job,
) -> None:
    """The prompt path end to end: 140 KB (over Linux's 128 KiB per-argument cap) written to
    the job's private dir, fed on stdin to the Codex stand-in run as ``codex exec --json -``
    under bwrap; the stand-in appends the prompt to NOTES.md."""
    config = SandboxConfig(
        extra_read_only=(job.root, STANDIN.parent, PYTHON_PREFIX),
        hidden=(job.data,),
    )
    home, tmp = step_dirs(job.private, "agent")
    policy = config.policy(workspace=job.workspace, home=home, tmp=tmp, network=True)
    prompt = "Add a line. " + "x" * 140_000 + " END-OF-PROMPT"
    prompt_file = write_prompt_file(job.private, prompt)
    argv = stdin_prompt_argv([PYTHON, str(STANDIN), "exec", "--json"])
    result = await run_process(
        argv,
        cwd=job.workspace,
        env=child_env(),
        time_limit=30,
        sandbox=policy,
        stdin=prompt_file,
        capture=True,
    )
    assert result.exit_code == 0, result.stderr
    assert read(job.workspace / "NOTES.md").strip().endswith("END-OF-PROMPT")
    assert stat.S_IMODE(prompt_file.stat().st_mode) == 0o600
