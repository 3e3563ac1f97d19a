"""The subprocess helper: allow-listed environment, streaming, time limit and cancellation that
take the whole process group down, and leftovers killed after a normal exit."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from activities.process import child_env, run_process
from tests.activities.conftest import gone_soon

SECRETS = {
    "CONVEX_ADMIN_KEY": "convex-admin",
    "CONVEX_DEPLOY_KEY": "convex-deploy",
    "CONVEX_URL": "https://x.convex.cloud",
    "TEMPORAL_API_KEY": "temporal",
    "GITHUB_TOKEN": "ghp_x",
    "GH_TOKEN": "ghp_y",
    "OPENAI_API_KEY": "sk-x",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "DB_PASSWORD": "pw",
    "LC_SECRET_TOKEN": "sneaky",
}


def test_child_env_keeps_the_basics_and_drops_secrets() -> None:
    source = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "RANDOM_THING": "x", **SECRETS}
    env = child_env(source=source)
    assert env == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C"}


def test_child_env_allow_list_exact_names_and_globs() -> None:
    source = {"PATH": "/bin", "MY_TOOL_HOME": "/t", "MY_TOOL_TOKEN": "t", **SECRETS}
    env = child_env(
        allow=["OPENAI_API_KEY", "MY_TOOL_*", "CONVEX_ADMIN_KEY", "TEMPORAL_*"], source=source
    )
    assert env["OPENAI_API_KEY"] == "sk-x"  # named exactly: the operator's explicit choice
    assert env["MY_TOOL_HOME"] == "/t"
    assert "MY_TOOL_TOKEN" not in env  # a glob never lets a secret-looking name through
    assert not any(name.startswith(("CONVEX_", "TEMPORAL_")) for name in env)
    assert child_env(extra={"GIT_TERMINAL_PROMPT": "0"}, source={})["GIT_TERMINAL_PROMPT"] == "0"


async def test_streams_output_to_log_and_callback(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "out.log"
    seen: list[tuple[str, str]] = []
    beats: list[float] = []
    result = await run_process(
        ["/bin/sh", "-c", "echo one; echo two >&2; printf 'three'; exit 4"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=10,
        log_path=log,
        on_line=lambda stream, line: seen.append((stream, line)),
        heartbeat=lambda: beats.append(time.monotonic()),
        heartbeat_interval=0.01,
    )
    assert result.exit_code == 4 and not result.timed_out
    assert sorted(seen) == [("stderr", "two"), ("stdout", "one"), ("stdout", "three")]
    assert sorted(log.read_text().splitlines()) == ["one", "three", "two"]
    assert set(result.tail) == {"one", "two", "three"}
    assert beats, "heartbeat called at least once"


async def test_time_limit_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; sleep 60"
    started = time.monotonic()
    result = await run_process(
        ["/bin/sh", "-c", script], cwd=tmp_path, env=child_env(), time_limit=0.5, kill_grace=1
    )
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    for pid in map(int, pids.read_text().split()):
        assert gone_soon(pid), f"pid {pid} survived the time limit"


async def test_sigterm_ignored_means_sigkill_after_grace(tmp_path: Path) -> None:
    script = "trap '' TERM; echo ready; sleep 60 & wait"
    started = time.monotonic()
    result = await run_process(
        ["/bin/sh", "-c", script], cwd=tmp_path, env=child_env(), time_limit=0.3, kill_grace=0.5
    )
    assert result.timed_out
    assert 0.7 <= time.monotonic() - started < 5
    assert gone_soon(result.pid)


async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"
    task = asyncio.create_task(
        run_process(["/bin/sh", "-c", script], cwd=tmp_path, env=child_env(), time_limit=60)
    )
    for _ in range(200):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid in map(int, pids.read_text().split()):
        assert gone_soon(pid), f"pid {pid} survived cancellation"


async def test_leftovers_are_killed_after_a_normal_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg"
    result = await run_process(
        ["/bin/sh", "-c", f"sleep 60 > /dev/null 2>&1 & echo $! > {pidfile}; exit 0"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=10,
    )
    assert result.exit_code == 0
    assert gone_soon(int(pidfile.read_text()))


async def test_signal_exit_code_is_negative(tmp_path: Path) -> None:
    result = await run_process(
        ["/bin/sh", "-c", "kill -USR1 $$"], cwd=tmp_path, env=child_env(), time_limit=10
    )
    assert result.exit_code == -signal.SIGUSR1


async def test_missing_program_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_process(["/nonexistent/agent"], cwd=tmp_path, env={}, time_limit=1)


async def test_capture_collects_stdout_and_stderr(tmp_path: Path) -> None:
    result = await run_process(
        ["/bin/sh", "-c", "echo out; echo err >&2"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=10,
        capture=True,
    )
    assert (result.stdout, result.stderr) == ("out", "err")
