"""The subprocess helper: allow-listed environment, streaming, time limit and cancellation that
take the whole process group down, and leftovers killed after a normal exit."""

from __future__ import annotations

import asyncio
import errno
import signal
import stat
import time
import tracemalloc
from pathlib import Path

import pytest

from activities.process import DEFAULT_LOG_LIMIT, CappedLog, child_env, run_process
from activities.prompt_input import stdin_prompt_argv, write_prompt_file
from tests.activities.conftest import STANDIN_COMMAND
from tests.processes import gone_soon

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


# --- log cap ---------------------------------------------------------------------------------


def test_capped_log_keeps_head_and_tail_with_one_marker(tmp_path: Path) -> None:
    path = tmp_path / "capped.log"
    log = CappedLog(path, limit=100)
    lines = [f"line-{i:03d}\n".encode() for i in range(100)]  # 9 bytes each, 900 in all
    for line in lines:
        log.write(line)
    log.close()
    text = path.read_text().splitlines()
    marker = [line for line in text if line.startswith("[jangar] log cut here")]
    assert len(marker) == 1
    head, tail = text[: text.index(marker[0])], text[text.index(marker[0]) + 1 :]
    assert head == [f"line-{i:03d}" for i in range(5)]  # 45 of 50 head bytes, whole lines
    assert tail == [f"line-{i:03d}" for i in range(95, 100)]  # the last 45 of 50 tail bytes
    assert "810 bytes (90 whole lines) of 900 left out" in marker[0]


def test_capped_log_under_the_limit_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "small.log"
    log = CappedLog(path, limit=1000)
    for line in (b"a" * 400 + b"\n", b"b" * 400 + b"\n", b"c\n"):  # the 2nd leaves the head
        log.write(line)
    log.close()
    assert path.read_bytes() == b"a" * 400 + b"\n" + b"b" * 400 + b"\n" + b"c\n"


def test_capped_log_keeps_the_end_of_one_huge_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    log = CappedLog(path, limit=20)
    log.write(b"0123456789" * 10 + b"\n")
    log.close()
    lines = path.read_bytes().splitlines()
    assert lines[0].startswith(b"[jangar] log cut here: 91 bytes") and lines[1] == b"123456789"


def test_capped_log_memory_stays_bounded_for_fifty_megabytes(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "big.log", limit=64 * 1024)
    line = b"x" * 1023 + b"\n"
    most = 0
    for _ in range(50 * 1024):  # 50 MiB
        log.write(line)
        most = max(most, log.memory_bytes)
    log.close()
    assert most <= 32 * 1024
    assert (tmp_path / "big.log").stat().st_size <= 64 * 1024 + 200


async def test_run_process_memory_stays_bounded_while_a_child_prints_fifty_megabytes(
    tmp_path: Path,
) -> None:
    log = tmp_path / "out.log"
    tracemalloc.start()
    try:
        result = await run_process(
            ["/bin/sh", "-c", "yes \"$(printf '%04095d' 1)\" | head -c 52428800"],
            cwd=tmp_path,
            env=child_env(),
            time_limit=60,
            log_path=log,
            log_limit=256 * 1024,
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0
    assert peak < 4 * 1024 * 1024, f"peak Python memory {peak} bytes"
    assert log.stat().st_size <= 256 * 1024 + 200


async def test_the_log_is_capped_by_default(tmp_path: Path) -> None:
    log = tmp_path / "default.log"
    size = DEFAULT_LOG_LIMIT + 4 * 1024 * 1024
    result = await run_process(
        ["/bin/sh", "-c", f"yes \"$(printf '%0999d' 1)\" | head -c {size}"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=60,
        log_path=log,
    )
    assert result.exit_code == 0
    assert log.stat().st_size <= DEFAULT_LOG_LIMIT + 200


# --- stdin: how a prompt reaches the agent ---------------------------------------------------

BIG_PROMPT = "Do the thing. " + "p" * 140_000 + " END"


async def test_a_large_prompt_on_argv_fails_but_stdin_bytes_and_files_work(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info:  # Linux caps one argument at 128 KiB
        await run_process(["/bin/echo", BIG_PROMPT], cwd=tmp_path, env=child_env(), time_limit=5)
    assert info.value.errno == errno.E2BIG

    from_bytes = await run_process(
        ["/bin/sh", "-c", "wc -c; echo done"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=10,
        stdin=BIG_PROMPT.encode(),
        capture=True,
    )
    assert from_bytes.stdout.split() == [str(len(BIG_PROMPT)), "done"]

    prompt_file = write_prompt_file(tmp_path / "private", BIG_PROMPT)
    from_file = await run_process(
        ["/bin/sh", "-c", "tail -c 4"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=10,
        stdin=prompt_file,
        capture=True,
    )
    assert from_file.stdout == " END"
    assert stat.S_IMODE(prompt_file.stat().st_mode) == 0o600


async def test_a_child_that_ignores_stdin_does_not_block_the_runner(tmp_path: Path) -> None:
    result = await run_process(
        ["/bin/sh", "-c", "exit 3"],
        cwd=tmp_path,
        env=child_env(),
        time_limit=10,
        stdin=b"x" * (4 * 1024 * 1024),  # more than a pipe holds; nobody reads it
    )
    assert result.exit_code == 3


async def test_the_codex_standin_reads_the_prompt_from_stdin_with_dash(tmp_path: Path) -> None:
    # Without ``--sandbox workspace-write``: the stand-in's argument parser takes the last word
    # not starting with "-" as the prompt, so it would read "workspace-write" (a stand-in bug,
    # tools/standins/codex_standin.py; the real Codex CLI parses ``--sandbox X -`` correctly).
    prompt_file = write_prompt_file(tmp_path / "private", BIG_PROMPT)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result = await run_process(
        stdin_prompt_argv(STANDIN_COMMAND[:4]),
        cwd=workspace,
        env=child_env(),
        time_limit=30,
        stdin=prompt_file,
        capture=True,
    )
    assert result.exit_code == 0, result.stderr
    assert (workspace / "NOTES.md").read_text().strip().endswith(" END")
    assert stdin_prompt_argv(["codex", "exec", "--json"]) == ["codex", "exec", "--json", "-"]
