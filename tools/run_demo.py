"""`make run` (``python -m tools.run_demo``): one real job, end to end, on the embedded local stack.

Starts the Temporal dev server and the local Convex backend, runs the worker in this process,
creates a sample repository (a bare "remote" with one commit), submits a work order from a chat
message, follows the run live and prints its timeline, then stops everything it started.
The agent is the real Codex CLI when it is installed and configured; otherwise the stand-in
under tools/standins/, with a notice saying so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from worker.cli.submit import SubmitRequest, create_work_order, follow, print_timeline, start_now
from worker.factories import convex_client
from worker.local.local_convex import DEV_ADMIN_KEY, start_local_backend
from worker.local.processes import start_temporal_dev_server
from worker.runtime.workers import run_worker
from worker.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent

STANDIN = ROOT / "tools" / "standins" / "codex_standin.py"


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_sample_repo(base: Path) -> Path:
    """A bare repository with one commit on main: the job's remote."""
    seed = base / "sample-seed"
    seed.mkdir(parents=True)
    (seed / "README.md").write_text("# Sample project\n\nMade by `make run`.\n")
    (seed / "greet.py").write_text('def greet(name: str) -> str:\n    return f"hello {name}"\n')
    _git("init", "-q", "-b", "main", cwd=seed)
    _git("-c", "user.name=demo", "-c", "user.email=demo@localhost", "add", "-A", cwd=seed)
    _git(
        "-c", "user.name=demo", "-c", "user.email=demo@localhost", "commit", "-qm", "init", cwd=seed
    )
    bare = base / "sample.git"
    _git("clone", "-q", "--bare", str(seed), str(bare), cwd=base)
    return bare


def codex_is_configured() -> bool:
    return shutil.which("codex") is not None and (
        bool(os.environ.get("OPENAI_API_KEY")) or (Path.home() / ".codex" / "auth.json").exists()
    )


async def main() -> int:
    runs = ROOT / ".jangar" / "make-run"
    runs.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
    if codex_is_configured():
        agent = None
        print("agent: the real Codex CLI (`codex exec`)")
    else:
        agent = [sys.executable, str(STANDIN), "exec", "--json", "--sandbox", "workspace-write"]
        print(
            "NOTICE: the Codex CLI is not installed or not configured (OPENAI_API_KEY or "
            "~/.codex/auth.json), so this run uses the STAND-IN agent at "
            f"{STANDIN.relative_to(ROOT)}. It edits files and prints Codex-style JSON, "
            "but it is not Codex."
        )
    started = time.monotonic()
    temporal = start_temporal_dev_server(base / "temporal")
    convex = None
    try:
        convex = start_local_backend(admin_key=DEV_ADMIN_KEY)
        overrides: dict[str, object] = {
            "temporal_address": temporal.address,
            "convex_url": convex.url,
            "convex_admin_key": SecretStr(DEV_ADMIN_KEY),
            "data_dir": base / "data",
            "health_port": 0,
            "metrics_port": 0,
            "log_level": "WARNING",
            "log_format": "console",
            "allow_local_repos": True,  # the sample repository is a local path
        }
        if agent is not None:
            overrides["codex_command"] = agent
        settings = load_settings().model_copy(update=overrides)
        print(
            f"stack: Temporal {temporal.address} (pid {temporal.pid}), "
            f"Convex {convex.url} (pid {convex.pid}), data {base}"
        )
        repo = make_sample_repo(base)
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop=stop))
        try:
            prompt = "Add a NOTES.md that explains what greet() does."
            async with convex_client(settings) as client:
                submitted = await create_work_order(
                    client,
                    SubmitRequest(
                        repo=str(repo),
                        prompt=prompt,
                        user="make-run",
                        checks=["python3 -m py_compile greet.py"],
                    ),
                )
                await start_now(client, settings, submitted, prompt)
                print(f"work order {submitted.work_order_id} -> workflow {submitted.workflow_id}")
                async with asyncio.timeout(600):
                    await follow(client, submitted, out=sys.stdout)
            print()
            print_timeline(submitted)
        finally:
            stop.set()
            await worker
        print(f"\nrun {submitted.status} in {time.monotonic() - started:.1f}s")
        return 0 if submitted.status == "succeeded" else 1
    finally:
        if convex is not None:
            convex.stop()
        temporal.stop()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
