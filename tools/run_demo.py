"""`make run` (``python -m tools.run_demo``): one real job, end to end, on the embedded local stack.

Starts the Temporal dev server and the local Convex backend (verifying user tokens, as
``jangar dev`` starts it), runs the worker in this process, creates a sample repository (a bare
"remote" with one commit) and plays both sides of the product:

- the operator registers the repository with its check (``repositories:add``, admin key);
- the chat user, with a token as the UI would hold, opens a session, sends the message and
  creates the work order from it (public functions: the order names the registered repository
  and carries no commands);
- the job is started at once (the admin key links it), and the run is followed live and its
  timeline printed through the user's own reads.

Then it stops everything it started. The agent is the real Codex CLI when it is installed and
configured; otherwise the stand-in under tools/standins/, with a notice saying so.
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

from activities.convex_client import ConvexClient
from activities.sandbox import SandboxConfig, SandboxUnavailable, probe
from worker.cli.submit import USER_READS, Submitted, follow, print_timeline, start_now
from worker.factories import convex_client
from worker.local.dev_auth import start_auth_backend
from worker.local.local_convex import DEV_ADMIN_KEY
from worker.local.processes import start_temporal_dev_server
from worker.runtime.workers import run_worker
from worker.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent

STANDIN = ROOT / "tools" / "standins" / "codex_standin.py"
PYTHON = os.path.realpath(sys.executable)
PYTHON_PREFIX = Path(sys.base_prefix).resolve()


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


def sandbox_mode() -> str:
    """bwrap when it works here; otherwise a NOTICE saying exactly why the run goes without."""
    try:
        probe(SandboxConfig())
    except SandboxUnavailable as exc:
        print(
            "NOTICE: the sandbox (bubblewrap) does not work on this machine, so this run's agent"
            f" and check run unsandboxed (JANGAR_SANDBOX=off): {exc}"
        )
        return "off"
    return "bwrap"


def codex_is_configured() -> bool:
    return shutil.which("codex") is not None and (
        bool(os.environ.get("OPENAI_API_KEY")) or (Path.home() / ".codex" / "auth.json").exists()
    )


async def chat_order(user: ConvexClient, repo: str, prompt: str) -> Submitted:
    """What the chat UI does with the user's token: a session, the message, the order."""
    session = await user.mutation("sessions:create", {"title": "make run"})
    message = await user.mutation("threads:append", {"sessionId": session, "content": prompt})
    order = await user.mutation(
        "workOrders:createFromMessage",
        {"sessionId": session, "triggerMessageId": message, "summary": prompt, "repo": repo},
    )
    return Submitted(str(session), str(message), str(order))


async def main() -> int:
    runs = ROOT / ".jangar" / "make-run"
    runs.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
    if codex_is_configured():
        agent = None
        print("agent: the real Codex CLI (`codex exec`)")
    else:
        # The interpreter itself (not the venv's link): the sandbox shows its prefix read-only.
        agent = [PYTHON, str(STANDIN), "exec", "--json"]
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
        convex = start_auth_backend(base / "data", admin_key=DEV_ADMIN_KEY)
        overrides: dict[str, object] = {
            "temporal_address": temporal.address,
            "convex_url": convex.url,
            "convex_admin_key": SecretStr(DEV_ADMIN_KEY),
            "convex_deploy_key": None,  # the local backend knows only its admin key
            "data_dir": base / "data",
            "health_port": 0,
            "metrics_port": 0,
            "log_level": "WARNING",
            "log_format": "console",
            "allow_local_repos": True,  # the sample repository is a local bare repository
            "sandbox": sandbox_mode(),
        }
        if agent is not None:
            overrides["codex_command"] = agent
            overrides["sandbox_read_only"] = [PYTHON_PREFIX, STANDIN.parent]
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
            token = convex.token("make-run", name="make run")
            async with (
                convex_client(settings) as operator,
                ConvexClient(convex.url, token=token) as user,
            ):
                await operator.mutation(
                    "repositories:add",
                    {"url": str(repo), "checks": ["python3 -m py_compile greet.py"]},
                )
                print(f"operator: registered {repo} with its check")
                submitted = await chat_order(user, str(repo), prompt)
                print(f"user {convex.user_id('make-run')}: work order {submitted.work_order_id}")
                await start_now(operator, settings, submitted)
                print(f"work order {submitted.work_order_id} -> workflow {submitted.workflow_id}")
                async with asyncio.timeout(600):
                    await follow(user, submitted, out=sys.stdout, reads=USER_READS)
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
