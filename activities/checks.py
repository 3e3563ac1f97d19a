"""``run_check``: one check command (a shell string) in the workspace, with its own log.

The workflow loops over the work order's checks (or ``JobConfig.check_commands``) and brackets
each call as a step of kind ``check``, so each result is self-contained: the command, pass or
fail, exit code, duration, its log's path and URL, and the tail of its output for the reason.

The command runs as ``/bin/sh -c COMMAND`` in the workspace, in its own process group, with
the agent's secret-free environment minus the agent's own keys (``JANGAR_AGENT_ENV_ALLOW``
names that look secret, such as ``OPENAI_API_KEY``), and a time limit (input ``timeout_seconds``,
default ``JobConfig.check_timeout_seconds``). A failing or timed-out check is a result
(``passed=False``); cancellation stops the process group and propagates.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from activities.artifact_store import ArtifactStore
from activities.config import JobConfig
from activities.models import CheckResult, RunCheckInput
from activities.process import child_env, looks_secret, run_process
from activities.workspace import open_workspace

log = structlog.stdlib.get_logger(__name__)
TAIL_CHARS = 2000


def check_env_allow(config: JobConfig) -> list[str]:
    """The agent's allow-list minus anything secret-looking: checks run the repository's own
    code (tests, linters), which has no business with the agent's API key."""
    return [name for name in config.agent_env_allow if not looks_secret(name)]


def check_log_name(index: int) -> str:
    return f"checks/check-{index:03d}.log"


async def run_check(
    inp: RunCheckInput,
    config: JobConfig,
    store: ArtifactStore,
    workflow_id: str,
    run_id: str,
    heartbeat: Callable[[], None] | None = None,
) -> CheckResult:
    """Run one check; see the module docstring."""
    workspace = open_workspace(inp.workspace, config)
    timeout = inp.timeout_seconds or config.check_timeout_seconds
    log_path = store.path_for(workflow_id, run_id, check_log_name(inp.index))
    result = await run_process(
        ["/bin/sh", "-c", inp.command],
        cwd=workspace,
        env=child_env(allow=check_env_allow(config)),
        time_limit=timeout,
        log_path=log_path,
        heartbeat=heartbeat,
        heartbeat_interval=config.heartbeat_interval_seconds,
        kill_grace=config.kill_grace_seconds,
    )
    tail = "\n".join(result.tail)[-TAIL_CHARS:]
    if result.timed_out:
        tail = (tail + f"\n[jangar] check stopped after its time limit of {timeout:g} s")[
            -TAIL_CHARS:
        ]
    passed = not result.timed_out and result.exit_code == 0
    log.info(
        "check_finished",
        index=inp.index,
        passed=passed,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
    )
    return CheckResult(
        index=inp.index,
        command=inp.command,
        passed=passed,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        duration_ms=int(result.duration_seconds * 1000),
        log_path=str(log_path),
        log_url=store.url_for(log_path),
        output_tail=tail,
    )
