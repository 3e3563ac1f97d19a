"""How much starting a process under the bwrap sandbox costs: ``/bin/true`` N times, bare and
sandboxed, both through ``subprocess`` directly and through ``run_process`` (what a step pays).

    .venv/bin/python tools/sandbox_overhead.py [--runs 50]

Prints the median and 90th percentile in milliseconds. The sandboxed command line is built once
per ``run_process`` call (it scans /etc for private files), as in a real step.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from activities.process import child_env, run_process
from activities.sandbox import SandboxConfig, SandboxPolicy, step_dirs, wrap


def _timed(runs: int, once: Callable[[], None]) -> list[float]:
    once()  # warm caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        once()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _timed_async(runs: int, policy: SandboxPolicy | None, cwd: Path) -> list[float]:
    samples = []
    for index in range(runs + 1):
        started = time.perf_counter()
        result = await run_process(
            ["/bin/true"], cwd=cwd, env=child_env(), time_limit=30, sandbox=policy
        )
        assert result.exit_code == 0, result
        if index:  # the first run warms caches
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def _line(label: str, samples: list[float]) -> str:
    p90 = statistics.quantiles(samples, n=10)[-1]
    return f"{label:<42} median {statistics.median(samples):7.2f} ms   p90 {p90:7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="jangar-overhead-") as scratch:
        root = Path(scratch).resolve()
        workspace = root / "data" / "workspaces" / "job"
        workspace.mkdir(parents=True)
        home, tmp = step_dirs(root / "data" / "private" / "job", "check-000")
        config = SandboxConfig(hidden=(root / "data",))
        policy = config.policy(workspace=workspace, home=home, tmp=tmp, network=False)
        command = wrap(policy, ["/bin/true"], workspace, child_env())
        env = dict(command.env)

        def bare() -> None:
            subprocess.run(["/bin/true"], cwd=workspace, check=True)

        def sandboxed() -> None:
            subprocess.run(list(command.argv), cwd=workspace, env=env, check=True)

        rows = [
            _line("subprocess /bin/true", _timed(runs, bare)),
            _line("subprocess bwrap ... /bin/true", _timed(runs, sandboxed)),
            _line("run_process /bin/true", asyncio.run(_timed_async(runs, None, workspace))),
            _line(
                "run_process(sandbox=bwrap) /bin/true",
                asyncio.run(_timed_async(runs, policy, workspace)),
            ),
        ]
    print(f"{runs} runs each")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
