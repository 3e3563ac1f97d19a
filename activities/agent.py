"""``run_agent``: the Codex CLI (or any agent command) working in the job's workspace.

The command line is ``JobConfig.codex_command`` (``JANGAR_CODEX_COMMAND``, default the real
Codex CLI, ``codex exec --json --sandbox workspace-write``) followed by the prompt as its last
argument (after ``--`` when the prompt starts with ``-``, so it is never read as an option).

How it ends, and what the workflow gets:

- exit code 0 and no ``turn.failed``/``error`` event: ``outcome="succeeded"``;
- any other exit, or a failure event: ``outcome="failed"`` with ``failure_reason`` (a result,
  not an exception: the log and the progress are still wanted);
- the time limit (input ``timeout_seconds``, default ``JobConfig.agent_timeout_seconds``):
  the process group is stopped and the result is ``outcome="timed_out"``, again a result, so
  the workflow records the log either way and retries nothing;
- cancellation: the process group is stopped and ``asyncio.CancelledError`` propagates
  (Temporal reports the activity cancelled); the partial log stays on disk;
- the command cannot be started: non-retryable ``ApplicationError`` type ``AgentNotFound``.

While it runs the activity heartbeats every ``JobConfig.heartbeat_interval_seconds`` with
``{"pid", "lines", "json_events", "last_event_type", "elapsed_seconds"}``; the full output
goes to ``agent.log`` in the artifact store.

The agent's environment is the allow-list of :func:`activities.process.child_env` plus
``JANGAR_AGENT_ENV_ALLOW`` (default: the agent's own ``CODEX_API_KEY`` and ``OPENAI_API_KEY``):
never the Convex key or the Temporal API key, and not the GitHub token or anything else
secret-looking the worker holds unless named there. (A logged-in Codex finds its credentials
under ``CODEX_HOME``/``HOME``, which pass.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from temporalio.exceptions import ApplicationError

from activities.artifact_store import ArtifactStore
from activities.codex_events import ProgressCollector
from activities.config import JobConfig
from activities.models import AgentResult, RunAgentInput
from activities.process import Stream, child_env, run_process
from activities.workspace import open_workspace

AGENT_NOT_FOUND = "AgentNotFound"  # non-retryable
LOG_NAME = "agent.log"

log = structlog.stdlib.get_logger(__name__)


def agent_argv(config: JobConfig, prompt: str) -> list[str]:
    """The agent's command line: the configured command, then the prompt."""
    command = list(config.codex_command)
    if prompt.startswith("-"):
        command.append("--")
    return [*command, prompt]


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


async def run_agent(
    inp: RunAgentInput,
    config: JobConfig,
    store: ArtifactStore,
    workflow_id: str,
    run_id: str,
    heartbeat: Callable[[dict[str, Any]], None] | None = None,
) -> AgentResult:
    """Run the agent to completion, time limit or cancellation (see the module docstring)."""
    workspace = open_workspace(inp.workspace, config)
    timeout = inp.timeout_seconds or config.agent_timeout_seconds
    log_path = store.path_for(workflow_id, run_id, LOG_NAME)
    collector = ProgressCollector()
    started = time.monotonic()
    pid: list[int] = []

    def on_line(stream: Stream, line: str) -> None:
        if stream == "stdout":
            collector.feed(line)
        else:
            collector.note_line()

    def beat() -> None:
        if heartbeat is not None:
            heartbeat(
                {
                    "pid": pid[0] if pid else None,
                    "lines": collector.lines,
                    "json_events": collector.json_events,
                    "last_event_type": collector.last_event_type,
                    "elapsed_seconds": round(time.monotonic() - started, 1),
                }
            )

    argv = agent_argv(config, inp.prompt)
    log.info("agent_starting", program=argv[0], workspace=str(workspace), timeout=timeout)
    try:
        result = await run_process(
            argv,
            cwd=workspace,
            env=child_env(allow=config.agent_env_allow),
            time_limit=timeout,
            log_path=log_path,
            on_line=on_line,
            on_start=pid.append,
            heartbeat=beat,
            heartbeat_interval=config.heartbeat_interval_seconds,
            kill_grace=config.kill_grace_seconds,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise ApplicationError(
            f"the agent command {argv[0]!r} cannot be run ({exc.strerror}); install the Codex"
            " CLI or set JANGAR_CODEX_COMMAND",
            type=AGENT_NOT_FOUND,
            non_retryable=True,
        ) from exc
    if result.timed_out:
        outcome = "timed_out"
        reason: str | None = f"the agent did not finish within its time limit of {timeout:g} s"
    else:
        reason = _failure_reason(result.exit_code, collector)
        outcome = "failed" if reason else "succeeded"
    log.info(
        "agent_finished",
        outcome=outcome,
        exit_code=result.exit_code,
        lines=collector.lines,
        json_events=collector.json_events,
        duration_seconds=round(result.duration_seconds, 3),
    )
    return AgentResult(
        outcome=outcome,
        succeeded=outcome == "succeeded",
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        failure_reason=reason,
        log_path=str(log_path),
        log_url=store.url_for(log_path),
        progress=collector.progress,
        progress_dropped=collector.dropped,
        lines=collector.lines,
        json_events=collector.json_events,
        thread_id=collector.thread_id,
        final_message=collector.final_message,
        usage=collector.usage,
        duration_ms=int(result.duration_seconds * 1000),
    )
