"""The one way job activities run a child process (the agent, a check, git).

What it guarantees, because an agent may run for an hour and spawn anything:

- The child runs in its own session and process group, so stopping it stops everything it
  started: on a time limit or on cancellation the whole group gets SIGTERM, then SIGKILL after
  a grace period, and the child is reaped before we return. After a normal exit, anything the
  child left running in its group is killed too (a check's stray ``server &``).
- stdout and stderr are streamed, line by line as they arrive, to a log file (both into one
  file, in arrival order) and to an ``on_line`` callback; nothing waits for the end.
- A heartbeat callback runs every ``heartbeat_interval`` seconds while the child runs (the
  activity turns it into ``activity.heartbeat``, which is also how Temporal delivers cancels).
- The environment is built from an allow-list (:func:`child_env`): worker secrets (CONVEX_*,
  TEMPORAL_*, GITHUB_TOKEN, anything whose name says KEY/TOKEN/SECRET/PASSWORD...) never reach
  the child unless the caller passes them explicitly.
- The log file is capped (``log_limit``, default :data:`DEFAULT_LOG_LIMIT`): it keeps the
  first half and the last half of the budget, whole lines, with one marker line between them
  saying how many bytes and lines were cut. Memory stays bounded by the tail's half of the
  budget however much the child prints (the tail reaches the file when the child ends).
- ``stdin`` may be bytes (fed through a pipe) or a file to read: how a prompt reaches the agent
  without touching argv (see :mod:`activities.prompt_input`).

Untrusted processes (the agent, checks) are run with ``sandbox=`` a
:class:`activities.sandbox.SandboxPolicy`:

- mode ``bwrap``: the command runs under bubblewrap in its own PID namespace (see
  :mod:`activities.sandbox`). Nothing outlives the step: bwrap is PID 1 of that namespace and
  exits when the command does, and the kernel then kills every process left in it, including
  ones that called ``setsid`` or double-forked. On a time limit or cancellation the
  namespace's processes get SIGTERM, then after the grace period its PID 1 gets SIGKILL (which
  kills the rest), then bwrap's process group; bwrap is reaped before we return, so no pipe
  stays open behind a stray grandchild.
- mode ``off``: the best that can be done without namespaces. The child runs in its own
  process group as before, and its environment carries a random marker
  (:data:`STEP_MARKER_ENV`); when the step ends, every process whose initial environment holds
  the marker is SIGKILLed, which catches ``setsid``/double-forked leftovers. The gap: a process
  that clears its environment (``env -i``) before forking away, or one that changed its uid,
  survives; it can also read the worker's environment, files and other jobs' workspaces, and
  signal the worker. Every such step logs :data:`activities.sandbox.OFF_WARNING`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import secrets
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from activities.sandbox import OFF_WARNING, SandboxPolicy, resolve_program, wrap

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]
LineCallback = Callable[[Stream, str], None]

# Names any child may inherit from the worker: enough for a shell, git, node and TLS to work.
BASE_ENV_ALLOW: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "TMPDIR",
    "TMP",
    "TEMP",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CODEX_HOME",
)
# Never inherited, even when an allow pattern matches: the worker's own credentials.
WORKER_SECRETS: tuple[str, ...] = ("CONVEX_*", "TEMPORAL_*")
# Inherited only when named explicitly (not through BASE_ENV_ALLOW or a glob).
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")

_READ_CHUNK = 64 * 1024
MAX_LINE = 1024 * 1024  # longer lines reach on_line cut at this many bytes (the log keeps all)
_DRAIN_SECONDS = 5.0
DEFAULT_LOG_LIMIT = 8 * 1024 * 1024  # bytes of log kept per process: half head, half tail
STEP_MARKER_ENV = "JANGAR_STEP_MARKER"  # sandbox off: finds a step's leftovers by environment
_REAP_SECONDS = 2.0


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def looks_secret(name: str) -> bool:
    """True for names like OPENAI_API_KEY, GITHUB_TOKEN, DB_PASSWORD, AWS_SECRET_ACCESS_KEY."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def child_env(
    allow: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a job process.

    - From ``source`` (default ``os.environ``): names in :data:`BASE_ENV_ALLOW` that do not look
      secret, plus names matching ``allow`` (the operator's ``JANGAR_AGENT_ENV_ALLOW``). A
      pattern with a glob never lets a secret-looking name through; an exact name does (that
      is how ``OPENAI_API_KEY`` reaches Codex). :data:`WORKER_SECRETS` never pass.
    - ``extra`` is set as given: the caller's explicit choice (``GIT_TERMINAL_PROMPT=0``...).
    """
    env_source = os.environ if source is None else source
    exact = {name for name in allow if not any(ch in name for ch in "*?[")}
    globs = [pattern for pattern in allow if pattern not in exact]
    env: dict[str, str] = {}
    for name, value in env_source.items():
        if _matches(name, WORKER_SECRETS):
            continue
        if name in exact or (
            not looks_secret(name) and (_matches(name, BASE_ENV_ALLOW) or _matches(name, globs))
        ):
            env[name] = value
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class ProcessResult:
    """How a child process ended."""

    pid: int
    exit_code: int | None  # None when timed out; negative: killed by that signal
    timed_out: bool
    duration_seconds: float
    stdout: str = ""  # only with capture=True (cut at capture_limit characters)
    stderr: str = ""
    tail: tuple[str, ...] = field(default_factory=tuple)  # the last lines, both streams
    stopped: bool = False  # ended because the caller's ``stop`` event was set
    log_truncated: bool = False  # the log hit its cap (head and tail kept)


class CappedLog:
    """A log file of at most ``limit`` bytes plus one marker line: the first ``limit // 2``
    bytes as they arrive, the last ``limit - limit // 2`` bytes when closed (held in memory
    until then), whole lines where possible, and between them one line saying what was cut.

    ``limit=None`` writes everything. Lines are written (and flushed) one at a time, so the
    head can be read while the process runs.
    """

    def __init__(self, path: Path, limit: int | None) -> None:
        if limit is not None and limit < 2:
            raise ValueError("log limit must be at least 2 bytes")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("wb")
        self._limit = limit
        self._head_left = limit // 2 if limit is not None else 0
        self._tail_budget = limit - limit // 2 if limit is not None else 0
        self._head_open = True
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.cut_bytes = 0
        self.cut_lines = 0
        self.total_bytes = 0

    def write(self, line: bytes) -> None:
        """Append one line (ending with a newline, or the last piece of the output)."""
        self.total_bytes += len(line)
        if self._limit is None or (self._head_open and len(line) <= self._head_left):
            self._file.write(line)
            self._file.flush()
            self._head_left -= len(line)
            return
        self._head_open = False  # the head ends at the first line that does not fit whole
        self._tail.append(line)
        self._tail_size += len(line)
        while self._tail_size > self._tail_budget:
            if len(self._tail) == 1:  # one line longer than the tail's budget: keep its end
                only = self._tail[0]
                keep = only[len(only) - self._tail_budget :]
                self.cut_bytes += len(only) - len(keep)
                self._tail[0] = keep
                self._tail_size = len(keep)
                break
            dropped = self._tail.popleft()
            self._tail_size -= len(dropped)
            self.cut_bytes += len(dropped)
            self.cut_lines += 1

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory for the tail (never more than the tail's budget)."""
        return self._tail_size

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self.cut_bytes:
                head = (self._limit or 0) - self._tail_budget
                self._file.write(
                    f"[jangar] log cut here: {self.cut_bytes} bytes ({self.cut_lines} whole lines)"
                    f" of {self.total_bytes} left out; the log keeps the first {head} and the"
                    f" last {self._tail_budget} bytes (log limit {self._limit} bytes)\n".encode()
                )
            self._file.writelines(self._tail)
            self._tail.clear()
            self._tail_size = 0
        finally:
            self._file.close()


class _Output:
    """Collects a child's output: log file, line callback, tail, optional capture."""

    def __init__(
        self,
        log_path: Path | None,
        on_line: LineCallback | None,
        capture: bool,
        capture_limit: int,
        tail_lines: int,
        log_limit: int | None = DEFAULT_LOG_LIMIT,
    ) -> None:
        self._log: CappedLog | None = None
        if log_path is not None:
            self._log = CappedLog(log_path, log_limit)
        self._on_line = on_line
        self._capture = capture
        self._limit = capture_limit
        self._captured: dict[Stream, list[str]] = {"stdout": [], "stderr": []}
        self._captured_size: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.callback_error: BaseException | None = None

    def line(self, stream: Stream, raw: bytes) -> None:
        if self._log is not None:
            self._log.write(raw if raw.endswith(b"\n") else raw + b"\n")  # whole lines only
        text = raw[:MAX_LINE].decode("utf-8", errors="replace").rstrip("\r\n")
        self.tail.append(text)
        if self._capture and self._captured_size[stream] < self._limit:
            self._captured[stream].append(text)
            self._captured_size[stream] += len(text) + 1
        if self._on_line is not None and self.callback_error is None:
            try:
                self._on_line(stream, text)
            except Exception as exc:  # a bad callback must not leave the child unmanaged
                self.callback_error = exc

    def captured(self, stream: Stream) -> str:
        text = "\n".join(self._captured[stream])
        return text[: self._limit]

    @property
    def log_truncated(self) -> bool:
        return self._log is not None and self._log.cut_bytes > 0

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


async def _pump(reader: asyncio.StreamReader, stream: Stream, out: _Output) -> None:
    pending = b""
    while True:
        chunk = await reader.read(_READ_CHUNK)
        if not chunk:
            break
        pending += chunk
        while True:
            newline = pending.find(b"\n")
            if newline < 0:
                break
            out.line(stream, pending[: newline + 1])
            pending = pending[newline + 1 :]
        if len(pending) > MAX_LINE:  # a huge line without newline: pass it on in pieces
            out.line(stream, pending)
            pending = b""
    if pending:
        out.line(stream, pending)


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member changed user: nothing we can do
        return False
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _pids() -> list[int]:
    """Every process id visible in /proc (ours excepted)."""
    own = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:  # pragma: no cover - no procfs
        return []
    return [int(name) for name in names if name.isdigit() and int(name) != own]


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def sandbox_init_pid(bwrap_pid: int) -> int | None:
    """The host pid of PID 1 of the namespace bwrap ``bwrap_pid`` made (its child living in
    another PID namespace), or None when it is gone."""
    outer = _pid_namespace(bwrap_pid)
    for pid in _pids():
        if _parent_of(pid) == bwrap_pid and _pid_namespace(pid) not in (None, outer):
            return pid
    return None


def namespace_members(init_pid: int) -> list[int]:
    """Host pids of the processes in ``init_pid``'s PID namespace, PID 1 excepted."""
    namespace = _pid_namespace(init_pid)
    if namespace is None:
        return []
    return [pid for pid in _pids() if pid != init_pid and _pid_namespace(pid) == namespace]


def kill_marked(marker: str, rounds: int = 5) -> list[int]:
    """SIGKILL every process whose initial environment holds ``STEP_MARKER_ENV=marker``
    (sandbox off: a step's leftovers, wherever they moved to); the pids killed."""
    needle = f"{STEP_MARKER_ENV}={marker}".encode()
    killed: list[int] = []
    for _ in range(rounds):  # a leftover may fork while we look: look again until none
        found = []
        for pid in _pids():
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    environ = handle.read()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(pid)
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGKILL)
        killed += found
    return killed


async def _wait(proc: asyncio.subprocess.Process, seconds: float) -> asyncio.CancelledError | None:
    """Wait up to ``seconds`` for ``proc``; a cancellation meanwhile is returned, not raised."""
    if seconds <= 0:
        return None
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        pass
    except asyncio.CancelledError as exc:
        return exc
    return None


async def _stop_group(
    proc: asyncio.subprocess.Process, grace: float, *, sandboxed: bool = False
) -> None:
    """Stop the child and everything it started, then reap it.

    Plain: SIGTERM the child's group, wait up to ``grace``, SIGKILL what is left. Sandboxed
    (``proc`` is bwrap): SIGTERM every process of the sandbox's PID namespace (a SIGTERM to
    bwrap itself would kill the namespace at once, leaving the command no grace), wait up to
    ``grace``, SIGKILL the namespace's PID 1 (the kernel then kills all the others, however
    they detached), give bwrap a moment to reap it and exit, then SIGKILL bwrap's group.

    Runs to the end even if cancelled again meanwhile (then re-raises the cancellation), so
    no process outlives the activity that started it.
    """
    cancelled: asyncio.CancelledError | None = None
    init = sandbox_init_pid(proc.pid) if sandboxed else None
    if not sandboxed:
        signal_group(proc.pid, signal.SIGTERM)
        cancelled = await _wait(proc, grace) or cancelled
    elif init is not None:
        for pid in namespace_members(init):
            _signal(pid, signal.SIGTERM)
        cancelled = await _wait(proc, grace) or cancelled
    # (sandboxed, no namespace yet: bwrap has not forked its PID 1; nothing to be gentle with)
    if init is not None and proc.returncode is None:
        _signal(init, signal.SIGKILL)
        cancelled = await _wait(proc, _REAP_SECONDS) or cancelled
    signal_group(proc.pid, signal.SIGKILL)
    while proc.returncode is None:
        try:
            await proc.wait()
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


async def _feed(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` to the child's stdin and close it; a child that stops reading is fine."""
    try:
        writer.write(data)
        await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await writer.wait_closed()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    time_limit: float,
    log_path: Path | None = None,
    on_line: LineCallback | None = None,
    on_start: Callable[[int], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_interval: float = 10.0,
    kill_grace: float = 10.0,
    capture: bool = False,
    capture_limit: int = 8 * 1024 * 1024,
    tail_lines: int = 40,
    sandbox: SandboxPolicy | None = None,
    stdin: bytes | Path | None = None,
    log_limit: int | None = DEFAULT_LOG_LIMIT,
    stop: asyncio.Event | None = None,
) -> ProcessResult:
    """Run ``argv`` in ``cwd`` with exactly ``env``; see the module docstring.

    A time limit is a result (``timed_out=True``); cancellation stops the process (group, or
    the sandbox's whole PID namespace) and re-raises ``asyncio.CancelledError``.
    ``FileNotFoundError``/``PermissionError`` from a missing or non-executable program (or,
    sandboxed, one the sandbox cannot see) propagate for the caller to classify.

    ``sandbox``: run under :mod:`activities.sandbox`'s policy (None: as is, for the worker's
    own trusted commands such as git). ``stdin``: bytes to feed, or a file to read (default:
    /dev/null). ``log_limit``: the log file's cap in bytes (None: unlimited). Sandboxed, a
    child killed by signal N exits 128+N (bwrap reports it so), not -N. ``stop``: when set, the
    process is stopped like on a time limit and the result says ``stopped`` (a budget spent,
    the worker handing the step over).
    """
    marker: str | None = None
    if sandbox is not None and sandbox.enabled:
        resolve_program(sandbox, argv[0], cwd, env)
    elif sandbox is not None:
        log.warning("sandbox_off: %s", OFF_WARNING)
        marker = secrets.token_hex(16)
    command = wrap(sandbox, argv, cwd, env)
    child_environ = dict(command.env)
    if marker is not None:
        child_environ[STEP_MARKER_ENV] = marker
    sandboxed = sandbox is not None and sandbox.enabled
    out = _Output(log_path, on_line, capture, capture_limit, tail_lines, log_limit)
    started = time.monotonic()
    stdin_file: IO[bytes] | None = None
    try:
        if isinstance(stdin, Path):
            stdin_file = stdin.open("rb")
        proc = await asyncio.create_subprocess_exec(
            *command.argv,
            cwd=str(cwd),
            env=child_environ,
            stdin=(
                stdin_file
                if stdin_file is not None
                else asyncio.subprocess.PIPE
                if stdin is not None
                else asyncio.subprocess.DEVNULL
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # own session => own process group, pgid == pid
        )
    except BaseException:
        out.close()
        raise
    finally:
        if stdin_file is not None:
            stdin_file.close()
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.create_task(_pump(proc.stdout, "stdout", out)),
        asyncio.create_task(_pump(proc.stderr, "stderr", out)),
    ]
    feeder: asyncio.Task[None] | None = None
    if isinstance(stdin, bytes):
        assert proc.stdin is not None
        feeder = asyncio.create_task(_feed(proc.stdin, stdin))
    beats: asyncio.Task[None] | None = None
    timed_out = stopped = False
    try:
        if on_start is not None:
            on_start(proc.pid)
        if heartbeat is not None:
            beats = asyncio.create_task(_beat(heartbeat, heartbeat_interval))
        exited = asyncio.ensure_future(proc.wait())
        waits: set[asyncio.Future[Any]] = {exited}
        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopping is not None:
            waits.add(stopping)
        try:
            await asyncio.wait(waits, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopping is not None:
                stopping.cancel()
        if not exited.done():
            stopped = stop is not None and stop.is_set()
            timed_out = not stopped
            await _stop_group(proc, kill_grace, sandboxed=sandboxed)
    except BaseException:
        await _stop_group(proc, kill_grace, sandboxed=sandboxed)
        raise
    finally:
        if beats is not None:
            beats.cancel()
        if feeder is not None:
            feeder.cancel()
        # Whatever the child left running in its group goes now (sandboxed: the namespace is
        # already gone with its PID 1); with the sandbox off, so does whatever carries the
        # step's marker. Then the pipes reach EOF.
        signal_group(proc.pid, signal.SIGKILL)
        if marker is not None:
            kill_marked(marker)
        _done, still_reading = await asyncio.wait(pumps, timeout=_DRAIN_SECONDS)
        for task in still_reading:  # a grandchild that left the group still holds a pipe
            task.cancel()
        out.close()
    if out.callback_error is not None:
        raise out.callback_error
    return ProcessResult(
        pid=proc.pid,
        exit_code=None if timed_out or stopped else proc.returncode,
        timed_out=timed_out,
        stopped=stopped,
        log_truncated=out.log_truncated,
        duration_seconds=time.monotonic() - started,
        stdout=out.captured("stdout"),
        stderr=out.captured("stderr"),
        tail=tuple(out.tail),
    )


async def _beat(heartbeat: Callable[[], None], interval: float) -> None:
    while True:
        with contextlib.suppress(Exception):
            heartbeat()
        await asyncio.sleep(interval)
