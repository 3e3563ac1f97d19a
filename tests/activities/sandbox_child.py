"""A disposable stand-in for the worker, for the sandbox attack tests.

``python -m tests.activities.sandbox_child SPEC_JSON`` runs one step through
:func:`activities.process.run_process` exactly as an activity would (allow-listed environment,
sandbox policy from the spec) and prints ``{"exit_code": ..., "timed_out": ...}``. The tests
start it with a canary secret in its environment and let the step attack it (read its
``/proc/<pid>/environ``, ``kill -9`` it), so that nothing can touch the pytest process itself.
The step's environment also carries ``WORKER_PID``, this process's pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from activities.process import child_env, run_process
from activities.sandbox import SandboxConfig, SandboxMode


async def _main(spec: dict[str, Any]) -> int:
    mode: SandboxMode = "bwrap" if spec["mode"] == "bwrap" else "off"
    config = SandboxConfig(
        mode=mode,
        extra_read_only=tuple(Path(p) for p in spec["extra_read_only"]),
        hidden=tuple(Path(p) for p in spec["hidden"]),
    )
    policy = config.policy(
        workspace=Path(spec["workspace"]),
        home=Path(spec["home"]),
        tmp=Path(spec["tmp"]),
        network=bool(spec.get("network", False)),
    )
    result = await run_process(
        ["/bin/sh", "-c", str(spec["script"])],
        cwd=policy.workspace,
        env=child_env(extra={"WORKER_PID": str(os.getpid())}),
        time_limit=float(spec.get("time_limit", 10)),
        log_path=Path(spec["log"]),
        kill_grace=0.5,
        sandbox=policy,
    )
    print(json.dumps({"exit_code": result.exit_code, "timed_out": result.timed_out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(json.loads(sys.argv[1]))))
