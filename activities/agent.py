"""``run_agent``: the Codex CLI (or any agent command) working in the job's workspace, sandboxed.

The command line is ``JobConfig.codex_command`` (default the real Codex CLI, ``codex exec
--json --sandbox workspace-write``) followed by ``-``: the prompt reaches the agent on stdin,
from a 0600 file in the job's private directory, never on argv (a 140 KB prompt would not fit,
and argv is readable by every local user).

The agent runs under the sandbox (``activities.sandbox``: its own PID namespace and /proc, the
workspace as its only writable tree, a fresh HOME, network per the repository's policy) with
the allow-listed environment of ``activities.process.child_env``. A logged-in Codex finds its
credentials in a per-step ``CODEX_HOME`` holding copies of the operator's ``auth.json`` and
``config.toml``; the worker's own secrets never reach it.

How it ends (a result, never an exception, except the last two):

- exit 0 and no ``turn.failed``/``error`` event: ``succeeded``;
- any other exit, or a failure event: ``failed`` with ``failure_reason``;
- the time limit: ``timed_out``; the run's token or agent-time budget spent:
  ``budget_exceeded`` (the agent is stopped as soon as a ``turn.completed`` shows it over);
- either way the tree is checkpointed (one commit on the job's start, bundled to
  Convex storage) and the diff and the log are uploaded, so nothing stays only on this worker;
- cancellation: the agent is stopped and ``asyncio.CancelledError`` propagates;
- the worker shutting down (SIGTERM, a scale-in): the agent is stopped and the step fails with
  the retryable ``WorkerShutdown`` at once, so another worker takes it over from the step's
  starting checkpoint instead of waiting out the grace period.

Progress reaches Convex while the agent runs (``activities.live_events``). Each attempt's
heartbeats carry the run's token usage and agent time so far, so a retried attempt keeps
counting against the budget and can say why the attempt before it ended.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from temporalio.exceptions import ApplicationError

from activities.attempts import (
    AttemptContext,
    handed_over_on_shutdown,
    previous_attempts,
)
from activities.codex_events import ProgressCollector
from activities.config import JobConfig
from activities.live_events import LiveEvents
from activities.models import AgentOutcome, AgentResult, AgentUsage, RunAgentInput
from activities.process import Stream, child_env, run_process
from activities.prompt_input import stdin_prompt_argv, write_prompt_file
from activities.sandbox import SandboxConfig, step_dirs
from activities.storage import FileStore
from activities.workspace import Workspaces

AGENT_NOT_FOUND = "AgentNotFound"  # non-retryable
CODEX_HOME_FILES = ("auth.json", "config.toml")


log = structlog.stdlib.get_logger(__name__)


def _failure_reason(exit_code: int | None, collector: ProgressCollector) -> str | None:
    if exit_code is None:
        return None
    if exit_code != 0:
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited {exit_code}"
        detail = f": {collector.failure}" if collector.failure else ""
        return f"the agent {how}{detail}"[:2000]
    if collector.failure:
        return f"the agent reported a failure: {collector.failure}"[:2000]
    return None


def _codex_home(home: Path, source: Path | None) -> Path:
    """A step-private CODEX_HOME with copies of the operator's Codex credentials/config."""
    target = home / ".codex"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    if source is not None and source.is_dir():
        for name in CODEX_HOME_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
                (target / name).chmod(0o600)
    return target


async def run_agent(
    inp: RunAgentInput,
    ctx: AttemptContext,
    *,
    config: JobConfig,
    sandbox: SandboxConfig,
    workspaces: Workspaces,
    files: FileStore,
    live: Callable[[int], LiveEvents],
) -> AgentResult:
    """Run the agent on the checkpoint ``inp.state``; see the module docstring."""
    attempts = previous_attempts(ctx.attempt, ctx.previous)
    prior = ctx.previous or {}
    prior_usage = AgentUsage(**prior["usage"]) if prior.get("usage") else None
    prior_agent_ms = int(prior.get("agent_ms", 0))
    limits = inp.limits
    time_limit = limits.agent_timeout_seconds
    budget_left: float | None = None
    if limits.max_agent_seconds is not None:
        budget_left = max(limits.max_agent_seconds - prior_agent_ms / 1000, 0.0)
        time_limit = min(time_limit, max(budget_left, 0.001))
    collector = ProgressCollector()
    events = live(ctx.attempt)
    stop = asyncio.Event()
    over_budget: list[str] = []
    started = time.monotonic()
    pid: list[int] = []

    def usage_so_far() -> AgentUsage:
        own = collector.usage or AgentUsage()
        return own.plus(prior_usage)

    def beat(**extra: Any) -> None:
        ctx.heartbeat(
            {
                "worker": ctx.worker_id,
                "pid": pid[0] if pid else None,
                "lines": collector.lines,
                "elapsed_seconds": round(time.monotonic() - started, 1),
                "usage": usage_so_far().model_dump(),
                "agent_ms": prior_agent_ms + int((time.monotonic() - started) * 1000),
                **extra,
            }
        )

    def on_line(stream: Stream, line: str) -> None:
        if stream != "stdout":
            collector.note_line()
            return
        progress = collector.feed(line)
        if progress is None:
            return
        events.add(progress)
        # Usage only moves when a turn completes: the budget is checked then.
        if progress.type == "turn.completed" and limits.max_tokens is not None and not over_budget:
            total = usage_so_far().total
            if total > limits.max_tokens:
                over_budget.append(
                    f"the run used {total} tokens, over its budget of {limits.max_tokens}"
                )
                stop.set()

    async with workspaces.hold(inp.state, heartbeat=beat) as ws:
        private = workspaces.private_dir(inp.state.work_order_id)
        home, tmp = step_dirs(private, f"agent-{ctx.attempt}")
        prompt_file = write_prompt_file(home.parent, inp.prompt)
        env = child_env(allow=config.agent_env_allow)
        env["CODEX_HOME"] = str(_codex_home(home, config.codex_home))
        argv = stdin_prompt_argv(config.codex_command)
        log_path = private / f"agent-{ctx.attempt}.log"

        events.start()
        log.info("agent_starting", program=argv[0], workspace=str(ws), time_limit=time_limit)
        async with handed_over_on_shutdown(ctx, stop, beat=beat, what="the agent step"):
            try:
                result = await run_process(
                    argv,
                    cwd=ws,
                    env=env,
                    time_limit=time_limit,
                    log_path=log_path,
                    on_line=on_line,
                    on_start=pid.append,
                    heartbeat=beat,
                    heartbeat_interval=config.heartbeat_interval_seconds,
                    kill_grace=config.kill_grace_seconds,
                    sandbox=sandbox.policy(
                        workspace=ws,
                        home=home,
                        tmp=tmp,
                        network=inp.network,
                        read_only=workspaces.shared_objects(ws),
                    ),
                    stdin=prompt_file,
                    log_limit=config.log_limit_bytes,
                    stop=stop,
                )
            except (FileNotFoundError, PermissionError) as exc:
                raise ApplicationError(
                    f"the agent command {argv[0]!r} cannot be run ({exc.strerror}); install the"
                    " Codex CLI, set JANGAR_CODEX_COMMAND, or add its prefix to the sandbox's"
                    " read-only paths (JANGAR_SANDBOX_READ_ONLY)",
                    type=AGENT_NOT_FOUND,
                    non_retryable=True,
                ) from None
            finally:
                await events.close()
        agent_ms = prior_agent_ms + int(result.duration_seconds * 1000)
        outcome: AgentOutcome
        reason: str | None
        if over_budget:
            outcome, reason = "budget_exceeded", over_budget[0]
        elif result.timed_out and budget_left is not None and budget_left <= time_limit:
            outcome = "budget_exceeded"
            reason = f"the agent reached its time budget of {limits.max_agent_seconds:g} s"
        elif result.timed_out:
            outcome = "timed_out"
            reason = f"the agent did not finish within its time limit of {time_limit:g} s"
        else:
            reason = _failure_reason(result.exit_code, collector)
            outcome = "failed" if reason else "succeeded"
        log.info(
            "agent_finished",
            outcome=outcome,
            exit_code=result.exit_code,
            lines=collector.lines,
            duration_seconds=round(result.duration_seconds, 3),
        )
        beat(phase="checkpoint")
        checkpoint = await workspaces.checkpoint(
            ws,
            inp.state,
            message=inp.message,
            committed_at_ms=inp.committed_at_ms,
            heartbeat=beat,
        )
        stored_log = await files.put(
            log_path,
            content_type="text/plain; charset=utf-8",
            truncated=result.log_truncated,
            heartbeat=beat,
        )
    return AgentResult(
        outcome=outcome,
        succeeded=outcome == "succeeded",
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        failure_reason=reason,
        log=stored_log,
        checkpoint=checkpoint.state,
        diff=checkpoint.diff,
        files_changed=checkpoint.files_changed,
        insertions=checkpoint.insertions,
        deletions=checkpoint.deletions,
        events_recorded=events.recorded,
        events_dropped=events.dropped,
        pending_events=events.pending(),
        lines=collector.lines,
        json_events=collector.json_events,
        thread_id=collector.thread_id,
        final_message=collector.final_message,
        usage=usage_so_far() if (collector.usage or prior_usage) else None,
        agent_ms=agent_ms,
        duration_ms=int(result.duration_seconds * 1000),
        attempts=attempts,
    )
