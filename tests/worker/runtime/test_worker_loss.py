"""No job is lost to a worker's death: two `jangar worker` processes, one killed mid-step.

Each test runs a job on a task queue served by two workers (WORKER_IDs ``a`` and ``b``, each
with a data directory of its own), finds which worker runs the step under test (Temporal's
pending activity names the worker identity), kills that worker (SIGKILL; or SIGTERM with a
short grace period, a scale-in), and then checks what the issue asks of the finished run:

- the job succeeds on the other worker, noticed within the heartbeat timeout (3 s here);
- every step is recorded once, the interrupted one with 2 attempts and the reason;
- no event or artifact is duplicated, and every artifact is readable over HTTP after the dead
  worker's data directory is deleted;
- the pushed commit holds the agent's edit exactly once, on top of the base.

The worker's git is real; to kill a worker in the middle of its fetch or its push, the workers'
PATH starts with a wrapper (written by the test, calling the real git) that pauses once: before
the first fetch, or after the first push has landed (the worker then dies before it can report
it). The wrapper's sleeping process is killed by PID at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle

from activities.convex_client import ConvexClient
from tests.git_repos import git, make_bare_repo
from tests.processes import pid_alive, pids_with_env
from tests.worker.conftest import (
    STANDIN_COMMAND,
    Background,
    clean_env,
    start_jangar,
    unique_queue,
    wait_until,
)
from worker.cli.submit import submit_as_operator
from worker.local.local_convex import RunningBackend, start_local_backend
from worker.local.processes import ManagedProcess, start_temporal_dev_server
from worker.runtime.temporal_client import DATA_CONVERTER
from workflows.codex_job import CodexJobWorkflow
from workflows.models import CodexJobInput

HEARTBEAT_TIMEOUT = 3
MARK = "CODEX_STANDIN_LOSS_TEST"


@dataclass
class Servers:
    temporal: ManagedProcess
    backend: RunningBackend
    base: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Temporal and Convex of this module's own: its workflow ids are its backend's."""
    base = tmp_path_factory.mktemp("worker-loss")
    temporal = start_temporal_dev_server(base / "temporal")
    try:
        backend = start_local_backend(admin_key=f"loss-{uuid.uuid4().hex}")
        try:
            yield Servers(temporal, backend, base)
        finally:
            backend.stop()
    finally:
        temporal.stop()


@dataclass
class Cluster:
    """Two workers on one task queue, the git wrapper's pause files, the job's remote."""

    servers: Servers
    base: Path
    queue: str
    marker: str
    remote: Path
    git_dir: Path
    workers: dict[str, Background] = field(default_factory=dict)

    def data_dir(self, worker_id: str) -> Path:
        return self.base / f"data-{worker_id}"

    def start(self, worker_id: str, **extra: str | float) -> Background:
        env = clean_env(
            TEMPORAL_ADDRESS=self.servers.temporal.address,
            TEMPORAL_TASK_QUEUE=self.queue,
            CONVEX_URL=self.servers.backend.url,
            CONVEX_ADMIN_KEY=self.servers.backend.admin_key or "",
            WORKER_ID=worker_id,
            JANGAR_DATA_DIR=self.data_dir(worker_id),
            JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
            JANGAR_AGENT_ENV_ALLOW="CODEX_STANDIN_*",
            JANGAR_HEARTBEAT_TIMEOUT_SECONDS=HEARTBEAT_TIMEOUT,
            JANGAR_HEARTBEAT_SECONDS=0.3,
            JANGAR_KILL_GRACE_SECONDS=1,
            SHUTDOWN_GRACE_SECONDS=2,
            DISPATCHER_ENABLED="false",
            HEALTH_PORT=0,
            METRICS_PORT=0,
            **{MARK: self.marker},
            **extra,
        )
        env["PATH"] = f"{self.git_dir}:{env.get('PATH', os.defpath)}"
        process = start_jangar("worker", env=env, logs=self.base / "logs")
        process.wait_for('"event": "worker started"')
        self.workers[worker_id] = process
        return process

    def pause_git(self, verb: str) -> None:
        """The next ``git <verb>`` (fetch, push) of either worker pauses (once)."""
        (self.git_dir / f"pause-{verb}").touch()

    def paused_pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.git_dir.glob("paused-*") if p.read_text()]

    def agent_pids(self) -> list[int]:
        """The job's sandboxed processes (the workers themselves carry the marker too)."""
        workers = {w.pid for w in self.workers.values()}
        return [p for p in pids_with_env(MARK, self.marker) if p not in workers]


def write_git_wrapper(directory: Path) -> None:
    """``git`` that pauses 60 s once per pause file: before a fetch, after a push."""
    real = shutil.which("git")
    assert real is not None
    directory.mkdir(parents=True)
    script = directory / "git"
    script.write_text(
        f"""#!/bin/sh
d='{directory}'
verb=''
for arg in "$@"; do
  case "$arg" in fetch|push) verb="$arg"; break;; esac
done
if [ "$verb" = fetch ] && mv "$d/pause-fetch" "$d/paused-fetch" 2>/dev/null; then
  echo $$ > "$d/paused-fetch"; sleep 60
fi
if [ "$verb" = push ] && mv "$d/pause-push" "$d/paused-push" 2>/dev/null; then
  '{real}' "$@"; code=$?; echo $$ > "$d/paused-push"; sleep 60; exit $code
fi
exec '{real}' "$@"
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
async def cluster(servers: Servers, tmp_path: Path) -> AsyncIterator[Cluster]:
    git_dir = tmp_path / "git-wrapper"
    write_git_wrapper(git_dir)
    made = Cluster(
        servers=servers,
        base=tmp_path,
        queue=unique_queue("loss"),
        marker=uuid.uuid4().hex,
        remote=await asyncio.to_thread(make_bare_repo, tmp_path / "remote"),
        git_dir=git_dir,
    )
    try:
        yield made
    finally:
        for process in made.workers.values():
            process.stop(grace=10)
        for pid in [*made.paused_pids(), *made.agent_pids()]:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def temporal(servers: Servers) -> Client:
    return await Client.connect(servers.temporal.address, data_converter=DATA_CONVERTER)


@pytest.fixture
async def convex(servers: Servers) -> AsyncIterator[ConvexClient]:
    async with ConvexClient(servers.backend.url, servers.backend.admin_key) as client:
        yield client


async def start_job(
    cluster: Cluster, temporal: Client, convex: ConvexClient, prompt: str, **extra: Any
) -> tuple[str, WorkflowHandle[Any, Any]]:
    order = await submit_as_operator(
        convex, repo=str(cluster.remote), prompt=prompt, user="loss", **extra
    )
    handle = await temporal.start_workflow(
        CodexJobWorkflow.run,
        CodexJobInput(work_order_id=order.work_order_id),
        id=f"work-order-{order.work_order_id}",
        task_queue=cluster.queue,
    )
    return order.work_order_id, handle


async def worker_running(handle: WorkflowHandle[Any, Any], activity: str) -> str:
    """The identity of the worker running ``activity`` (waits until one has started it)."""
    found: list[str] = []

    async def started() -> bool:
        described = await handle.describe()
        for pending in described.raw_description.pending_activities:
            if (
                pending.activity_type.name == activity
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                and pending.last_worker_identity
            ):
                found.append(pending.last_worker_identity)
                return True
        return False

    await wait_until(started, within=60, what=f"a worker to start {activity}", interval=0.1)
    return found[-1]


async def timeline(convex: ConvexClient, order_id: str) -> dict[str, Any]:
    run = await convex.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": order_id}
    )
    assert run is not None
    page = await convex.query("runs:getTimelineAsOperator", {"runId": run["_id"], "limit": 500})
    assert page["isDone"]
    return dict(page)


async def assert_complete_once(
    convex: ConvexClient,
    cluster: Cluster,
    tl: dict[str, Any],
    *,
    interrupted: str,
    dead: str,
    prompt: str,
) -> None:
    """The finished run is complete, nothing in it twice, and it outlives the dead worker."""
    assert tl["run"]["status"] == "succeeded", tl["run"]
    names = Counter(s["name"] for s in tl["steps"])
    assert all(n == 1 for n in names.values()), names
    assert all(s["status"] in ("succeeded", "skipped") for s in tl["steps"]), tl["steps"]
    [step] = [s for s in tl["steps"] if s["name"] == interrupted]
    assert step["attempts"] == 2, step
    [reason] = step["payload"]["retriedBecause"]
    assert "attempt 1" in reason and dead in reason, reason
    keys = Counter(e["idempotencyKey"] for e in tl["events"])
    assert all(n == 1 for n in keys.values()), keys.most_common(3)
    changes = Counter(
        (e["data"].get("step"), e["data"].get("status"))
        for e in tl["events"]
        if e["type"] == "state_change"
    )
    assert all(n == 1 for n in changes.values()), changes.most_common(3)
    artifacts = Counter((a["type"], a["label"]) for a in tl["artifacts"])
    assert all(n == 1 for n in artifacts.values()), artifacts

    # The dead worker's disk is gone; everything the run points at is still served.
    await asyncio.to_thread(shutil.rmtree, cluster.data_dir(dead))
    assert tl["artifacts"], "the run recorded no artifact"
    for artifact in tl["artifacts"]:
        body = await convex.download(artifact["url"])
        assert body, artifact
    [diff] = [a for a in tl["artifacts"] if a["type"] == "diff"]
    assert b"NOTES.md" in await convex.download(diff["url"])

    # The pushed commit: one commit on the base, the agent's edit exactly once.
    branch = tl["run"]["branch"]
    head = git("rev-parse", f"refs/heads/{branch}", cwd=cluster.remote)
    assert head == tl["run"]["commitSha"]
    assert git("rev-parse", f"{head}^", cwd=cluster.remote) == git(
        "rev-parse", "refs/heads/main", cwd=cluster.remote
    )
    notes = git("show", f"{head}:NOTES.md", cwd=cluster.remote)
    assert notes.count(prompt) == 1, notes


async def wait_for_edit(cluster: Cluster, worker_id: str, order_id: str) -> None:
    """Until the agent on ``worker_id`` has edited its tree (a kill now leaves it dirty)."""
    notes = cluster.data_dir(worker_id) / "workspaces" / order_id / "NOTES.md"

    async def edited() -> bool:
        return notes.exists()

    await wait_until(edited, within=30, what="the agent's edit", interval=0.05)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_a_worker_lost_mid_agent_hands_the_job_to_the_other_worker(
    cluster: Cluster, temporal: Client, convex: ConvexClient, how: str
) -> None:
    cluster.start("a")
    cluster.start("b")
    prompt = "Add a NOTES.md [standin:hold=4]"
    order_id, handle = await start_job(cluster, temporal, convex, prompt)
    dead = await worker_running(handle, "run_agent")
    await wait_for_edit(cluster, dead, order_id)
    cluster.workers[dead].proc.send_signal(getattr(signal, how))

    async with asyncio.timeout(90):
        await handle.result()
    tl = await timeline(convex, order_id)
    [agent] = [s for s in tl["steps"] if s["name"] == "run_agent"]
    if how == "SIGTERM":
        assert "handed over" in agent["payload"]["retriedBecause"][0]
        assert cluster.workers[dead].proc.wait(timeout=30) == 0  # a clean scale-in
    await assert_complete_once(
        convex, cluster, tl, interrupted="run_agent", dead=dead, prompt=prompt
    )
    assert cluster.agent_pids() == []  # the first attempt's agent died with its worker


async def test_a_worker_lost_mid_check_has_the_check_rerun_on_the_checkpoint_elsewhere(
    cluster: Cluster, temporal: Client, convex: ConvexClient
) -> None:
    cluster.start("a")
    cluster.start("b")
    prompt = "Add a NOTES.md"
    order_id, handle = await start_job(
        cluster, temporal, convex, prompt, checks=["sleep 3; grep -q NOTES NOTES.md"]
    )
    dead = await worker_running(handle, "run_check")
    cluster.workers[dead].proc.send_signal(signal.SIGKILL)

    async with asyncio.timeout(90):
        await handle.result()
    tl = await timeline(convex, order_id)
    [check] = [s for s in tl["steps"] if s["kind"] == "check"]
    await assert_complete_once(
        convex, cluster, tl, interrupted=check["name"], dead=dead, prompt=prompt
    )


@pytest.mark.parametrize(
    ("verb", "step"), [("fetch", "prepare_workspace"), ("push", "commit_and_push")]
)
async def test_a_worker_lost_mid_git_step_has_the_step_redone_elsewhere_once(
    cluster: Cluster, temporal: Client, convex: ConvexClient, verb: str, step: str
) -> None:
    """Killed before its first fetch, or right after its push landed (before reporting it)."""
    cluster.start("a")
    cluster.start("b")
    cluster.pause_git(verb)
    prompt = "Add a NOTES.md"
    order_id, handle = await start_job(cluster, temporal, convex, prompt)

    async def paused() -> bool:
        return bool(cluster.paused_pids())

    await wait_until(paused, within=60, what=f"the paused git {verb}", interval=0.05)
    dead = await worker_running(handle, step)
    cluster.workers[dead].proc.send_signal(signal.SIGKILL)

    async with asyncio.timeout(90):
        await handle.result()
    tl = await timeline(convex, order_id)
    await assert_complete_once(convex, cluster, tl, interrupted=step, dead=dead, prompt=prompt)
    if verb == "push":
        [pushed] = [s for s in tl["steps"] if s["name"] == "commit_and_push"]
        assert pushed["payload"]["commitSha"] == tl["run"]["commitSha"]


async def test_the_same_worker_back_on_a_dirty_tree_keeps_the_edit_once(
    cluster: Cluster, temporal: Client, convex: ConvexClient
) -> None:
    """One worker, SIGKILLed after the agent edited its tree and restarted with the same
    WORKER_ID and data directory: the retry finds the tree the first attempt left and must
    start from the checkpoint, not from that tree."""
    cluster.start("a")
    prompt = "Add a NOTES.md [standin:hold=4]"
    order_id, handle = await start_job(cluster, temporal, convex, prompt)
    assert await worker_running(handle, "run_agent") == "a"
    await wait_for_edit(cluster, "a", order_id)
    first = cluster.workers["a"]
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=30)
    first.stop()
    dirty = cluster.data_dir("a") / "workspaces" / order_id / "NOTES.md"
    assert prompt in dirty.read_text()  # the first attempt's edit is still on disk
    cluster.start("a")

    async with asyncio.timeout(90):
        await handle.result()
    tl = await timeline(convex, order_id)
    # The data directory is the one worker's; the artifacts check deletes it last.
    await assert_complete_once(
        convex, cluster, tl, interrupted="run_agent", dead="a", prompt=prompt
    )
