"""``run_check``: one check command (a shell string) on the job's checkpoint, sandboxed.

The workflow loops over the job's checks (the repository registry's, or an operator's) and
brackets each call as a step of kind ``check``, so each result is self-contained: the command,
pass or fail, exit code, duration, its log (uploaded to Convex storage) and the tail of its
output for the reason.

A check runs code the agent wrote (a test runner loads whatever ``conftest.py`` the agent
left), so it runs as ``/bin/sh -c COMMAND`` under the sandbox (``activities.sandbox``): no
network unless the repository's entry allows it, the workspace its only writable tree, a fresh
HOME, and the agent's secret-free environment minus the agent's own keys. It starts from the
exact checkpoint the agent left (``WorkspaceState``), on whichever worker runs it. A failing
or timed-out check is a result (``passed=False``); cancellation stops it and propagates; a
worker shutting down hands it over (``WorkerShutdown``, retryable), like the agent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from activities.attempts import (
    AttemptContext,
    handed_over_on_shutdown,
    previous_attempts,
)
from activities.config import JobConfig
from activities.models import CheckResult, RunCheckInput
from activities.process import child_env, looks_secret, run_process
from activities.sandbox import SandboxConfig, step_dirs
from activities.storage import FileStore
from activities.workspace import Workspaces

log = structlog.stdlib.get_logger(__name__)
TAIL_CHARS = 2000


def check_env_allow(config: JobConfig) -> list[str]:
    """The agent's allow-list minus anything secret-looking: checks run the repository's own
    code (tests, linters), which has no business with the agent's API key."""
    return [name for name in config.agent_env_allow if not looks_secret(name)]


async def run_check(
    inp: RunCheckInput,
    ctx: AttemptContext,
    *,
    config: JobConfig,
    sandbox: SandboxConfig,
    workspaces: Workspaces,
    files: FileStore,
) -> CheckResult:
    """Run one check; see the module docstring."""
    timeout = inp.timeout_seconds or config.check_timeout_seconds
    stop = asyncio.Event()

    def beat(**extra: Any) -> None:
        ctx.heartbeat({"worker": ctx.worker_id, **extra})

    async with workspaces.hold(inp.state, heartbeat=beat) as ws:
        private = workspaces.private_dir(inp.state.work_order_id)
        home, tmp = step_dirs(private, f"check-{inp.index:03d}-{ctx.attempt}")
        log_path = private / f"check-{inp.index:03d}.log"

        async with handed_over_on_shutdown(ctx, stop, beat=beat, what=f"check {inp.index}"):
            result = await run_process(
                ["/bin/sh", "-c", inp.command],
                cwd=ws,
                env=child_env(allow=check_env_allow(config)),
                time_limit=timeout,
                log_path=log_path,
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
                log_limit=config.log_limit_bytes,
                stop=stop,
            )
        stored = await files.put(
            log_path,
            content_type="text/plain; charset=utf-8",
            truncated=result.log_truncated,
            heartbeat=beat,
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
        log=stored,
        output_tail=tail,
        attempts=previous_attempts(ctx.attempt, ctx.previous),
    )
