"""Whole jobs through the real stack: a real Temporal dev server, the real worker assembly and
activities, the local Convex backend (behind a proxy that drops connections and responses),
real git against a bare clone of this project's repository, and the stand-in agent.

Each test reads the run's timeline back from Convex and checks it record by record.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from activities.convex_client import ConvexClient
from activities.persistence import PersistenceActivities
from activities.persistence_models import RunStatusResult, RunStatusUpdate
from activities.storage import FileStore
from tests.git_repos import git, make_bare_repo
from tests.integration.conftest import Stack, running_stack
from tests.processes import pids_with_env
from tests.worker.conftest import wait_until
from tools.convex_proxy import FlakyProxy
from worker.cli.submit import submit_as_operator
from worker.local.local_convex import RunningBackend, start_local_backend
from worker.settings import Settings
from workflows.codex_job import CodexJobWorkflow
from workflows.models import CodexJobInput, CodexJobResult

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    dev_server_env: WorkflowEnvironment,
    convex_backend: RunningBackend,
    flaky_convex: FlakyProxy,
    tmp_path: Path,
) -> Any:
    record = bool(request.config.getoption("--record-histories"))
    async with running_stack(
        dev_server_env, convex_backend, flaky_convex, tmp_path / "data", record
    ) as s:
        yield s


async def new_work_order(
    stack: Stack,
    repo: Path,
    prompt: str,
    *,
    base_branch: str | None = None,
    checks: list[str] | None = None,
) -> CodexJobInput:
    order = await submit_as_operator(
        stack.convex,
        repo=str(repo),
        prompt=prompt,
        title="it",
        user=f"it-{uuid.uuid4().hex[:6]}",
        baseBranch=base_branch,
        checks=checks,
    )
    return CodexJobInput(work_order_id=order.work_order_id)


async def start(stack: Stack, job: CodexJobInput) -> WorkflowHandle[Any, CodexJobResult]:
    """Start the job as the dispatcher would: workflow id ``work-order-<id>``, shared queue."""
    return await stack.env.client.start_workflow(
        CodexJobWorkflow.run,
        job,
        id=f"work-order-{job.work_order_id}",
        task_queue=stack.settings.temporal_task_queue,
    )


async def full_timeline(stack: Stack, work_order_id: str) -> dict[str, Any]:
    run = await stack.convex.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": work_order_id}
    )
    assert run is not None
    page = await stack.convex.query(
        "runs:getTimelineAsOperator", {"runId": run["_id"], "limit": 500}
    )
    assert page["isDone"]
    return dict(page)


async def read_url(stack: Stack, url: str) -> str:
    """A stored log or diff, as anyone reads it: over HTTP from the URL Convex serves."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert answer.status_code == 200, answer.text
    return answer.text


def steps(tl: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in tl["steps"]]


def assert_no_duplicates(tl: dict[str, Any]) -> None:
    keys = [e["idempotencyKey"] for e in tl["events"]]
    assert len(keys) == len(set(keys)), "an event was recorded twice"
    names = [s["name"] for s in tl["steps"]]
    assert len(names) == len(set(names)), "a step was recorded twice"
    labels = [a["idempotencyKey"] for a in tl["artifacts"]]
    assert len(labels) == len(set(labels)), "an artifact was recorded twice"
    # The workflow's own events are in the order it made them (their keys carry its counter).
    seqs = [int(k.rsplit("/", 1)[1]) for k in keys if "/event/" in k]
    assert seqs == sorted(seqs) and seqs == list(range(1, len(seqs) + 1))
    times = [e["createdAt"] for e in tl["events"]]
    assert times == sorted(times)


async def test_a_job_on_this_projects_repository_survives_a_flaky_convex(
    stack: Stack, project_remote: tuple[Path, str]
) -> None:
    remote, base = project_remote
    job = await new_work_order(
        stack,
        remote,
        "Write down what the Jangar worker does [standin:events=5]",
        base_branch=base,
        checks=["test -f NOTES.md", "git diff --quiet HEAD -- pyproject.toml"],
    )
    handle = await start(stack, job)
    # Convex goes away for a while, then answers but loses responses, then recovers.
    stack.proxy.down = True
    await asyncio.sleep(1.5)
    stack.proxy.down = False
    stack.proxy.lose_responses(6)
    result = await handle.result()
    await stack.save_history(handle, "success_with_flaky_convex")

    assert result.status == "succeeded"
    assert stack.proxy.refused > 0 and stack.proxy.lost == 6, "faults were not injected"
    tl = await full_timeline(stack, job.work_order_id)
    assert steps(tl) == [
        ("prepare_workspace", "succeeded"),
        ("run_agent", "succeeded"),
        ("check 1: test -f NOTES.md", "succeeded"),
        ("check 2: git diff --quiet HEAD -- pyproject.toml", "succeeded"),
        ("commit_and_push", "succeeded"),
        ("open_pull_request", "skipped"),
    ]
    assert_no_duplicates(tl)
    run = tl["run"]
    assert run["status"] == "succeeded" and tl["workOrder"]["status"] == "succeeded"
    assert run["temporalWorkflowId"] == handle.id
    # The branch landed on the remote with the recorded commit on top of the base.
    assert run["commitSha"] == git("rev-parse", f"refs/heads/{run['branch']}", cwd=remote)
    assert git("rev-parse", f"{run['commitSha']}^", cwd=remote) == git(
        "rev-parse", base, cwd=remote
    )
    by_type = {a["type"]: a for a in tl["artifacts"]}
    assert set(by_type) == {"log", "diff"}
    diff = await read_url(stack, by_type["diff"]["url"])
    assert "+++ b/NOTES.md" in diff
    log = await read_url(stack, by_type["log"]["url"])
    assert "turn.completed" in log
    agent_events = [e for e in tl["events"] if "agent" in (e.get("data") or {})]
    assert len(agent_events) >= 5
    assert tl["events"][-1]["data"] == {"status": "succeeded"}
    runs = await stack.convex.query("runs:listAll", {"limit": 100})
    assert [r["_id"] for r in runs if r["workflowRequestId"] == job.work_order_id] == [run["_id"]]


async def test_agent_failure_records_log_and_diff(
    stack: Stack, project_remote: tuple[Path, str]
) -> None:
    remote, base = project_remote
    job = await new_work_order(stack, remote, "Break things [standin:exit=4]", base_branch=base)
    handle = await start(stack, job)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await stack.save_history(handle, "agent_failure")

    tl = await full_timeline(stack, job.work_order_id)
    assert steps(tl) == [("prepare_workspace", "succeeded"), ("run_agent", "failed")]
    assert tl["run"]["status"] == "failed"
    assert tl["run"]["failureReason"]["step"] == "run_agent"
    assert "4" in tl["run"]["failureReason"]["message"]
    assert {a["type"] for a in tl["artifacts"]} == {"log"}  # the agent changed nothing
    assert_no_duplicates(tl)
    assert f"codex/{job.work_order_id}" not in git("branch", "--list", cwd=remote)


async def test_failing_check_records_its_log_and_the_diff(
    stack: Stack, project_remote: tuple[Path, str]
) -> None:
    remote, base = project_remote
    job = await new_work_order(
        stack, remote, "Add notes", base_branch=base, checks=["echo checking; exit 3"]
    )
    handle = await start(stack, job)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await stack.save_history(handle, "failing_check")

    tl = await full_timeline(stack, job.work_order_id)
    assert steps(tl)[-1] == ("check 1: echo checking; exit 3", "failed")
    check = tl["steps"][-1]
    assert (await read_url(stack, check["logUrl"])).startswith("checking")
    assert {a["type"] for a in tl["artifacts"]} == {"log", "diff"}
    assert tl["run"]["failureReason"]["step"] == "check 1: echo checking; exit 3"
    assert_no_duplicates(tl)


async def test_nothing_to_commit_is_a_success_without_a_branch(
    stack: Stack, project_remote: tuple[Path, str]
) -> None:
    remote, base = project_remote
    job = await new_work_order(stack, remote, "Look only [standin:no-changes]", base_branch=base)
    handle = await start(stack, job)
    result = await handle.result()
    await stack.save_history(handle, "nothing_to_commit")

    assert result.status == "succeeded" and result.commit_sha is None
    tl = await full_timeline(stack, job.work_order_id)
    assert steps(tl)[-2:] == [("commit_and_push", "succeeded"), ("open_pull_request", "skipped")]
    assert f"codex/{job.work_order_id}" not in git("branch", "--list", cwd=remote)
    assert_no_duplicates(tl)


async def stored(stack: Stack, storage_id: str) -> bool:
    return await stack.convex.query("files:getUrl", {"storageId": storage_id}) is not None


async def test_storage_keeps_what_records_need_and_sweeps_a_finished_runs_checkpoint_and_orphans(
    stack: Stack, project_remote: tuple[Path, str], tmp_path: Path
) -> None:
    """While the job runs, a sweep that treats every unnamed file as old keeps the checkpoint
    the agent step recorded; once the run has ended, the same sweep deletes that checkpoint and
    an upload no record names (what an attempt that died before recording leaves), and every
    log and diff of the run is still served."""
    remote, base = project_remote
    files = FileStore(stack.convex)
    job = await new_work_order(
        stack, remote, "Add notes", base_branch=base, checks=["sleep 3", "test -f NOTES.md"]
    )
    handle = await start(stack, job)

    async def agent_recorded() -> bool:
        run = await stack.convex.query(
            "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": job.work_order_id}
        )
        if run is None:
            return False
        tl = await full_timeline(stack, job.work_order_id)
        return any(s["name"] == "run_agent" and s["status"] == "succeeded" for s in tl["steps"])

    await wait_until(agent_recorded, within=60, what="the agent step's record")
    running = await full_timeline(stack, job.work_order_id)
    assert running["run"]["status"] == "running"
    bundle = next(s for s in running["steps"] if s["name"] == "run_agent")["checkpointStorageId"]
    orphan_file = tmp_path / "orphan.log"
    orphan_file.write_text("uploaded by an attempt that died before recording it\n")
    orphan = (await files.put(orphan_file, content_type="text/plain")).storage_id
    await files.sweep(orphan_age_seconds=3600, every_seconds=0)
    assert await stored(stack, bundle), "a running job's checkpoint was swept"
    assert await stored(stack, orphan), "a young upload was swept"

    assert (await handle.result()).status == "succeeded"
    # Twice: a pass another worker left half done is finished first, then one whole pass.
    swept = [await files.sweep(orphan_age_seconds=0, every_seconds=0) for _ in range(2)]
    assert sum(t.released for t in swept) >= 1 and sum(t.deleted for t in swept) >= 1
    assert not await stored(stack, bundle), "a finished run's checkpoint is still stored"
    assert not await stored(stack, orphan), "an upload no record names is still stored"

    tl = await full_timeline(stack, job.work_order_id)
    assert "checkpointStorageId" not in next(s for s in tl["steps"] if s["name"] == "run_agent")
    assert steps(tl) == [
        ("prepare_workspace", "succeeded"),
        ("run_agent", "succeeded"),
        ("check 1: sleep 3", "succeeded"),
        ("check 2: test -f NOTES.md", "succeeded"),
        ("commit_and_push", "succeeded"),
        ("open_pull_request", "skipped"),
    ]
    assert {a["type"] for a in tl["artifacts"]} == {"log", "diff"}
    for artifact in tl["artifacts"]:
        assert await stored(stack, artifact["storageId"])
        await read_url(stack, artifact["url"])
    for step in tl["steps"]:
        if step["name"].startswith("check "):
            await read_url(stack, step["logUrl"])
            assert await stored(stack, step["logStorageId"])


async def test_cancel_kills_the_agent_and_records_the_cancellation(
    stack: Stack,
    project_remote: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote, base = project_remote
    mark = uuid.uuid4().hex  # the agent inherits it: CODEX_STANDIN_MARK is on the allow-list
    monkeypatch.setenv("CODEX_STANDIN_MARK", mark)
    job = await new_work_order(stack, remote, "Think hard [standin:sleep=120]", base_branch=base)
    handle = await start(stack, job)

    async def agent_running() -> bool:
        return bool(pids_with_env("CODEX_STANDIN_MARK", mark))

    await wait_until(agent_running, within=60, what="the agent process")
    started = asyncio.get_running_loop().time()
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    took = asyncio.get_running_loop().time() - started
    await stack.save_history(handle, "canceled_during_agent")

    assert isinstance(failure.value.cause, CancelledError)
    assert took < 30, f"cancellation took {took:.1f}s: the agent was not killed promptly"
    tl = await full_timeline(stack, job.work_order_id)
    assert tl["run"]["status"] == "canceled" and tl["workOrder"]["status"] == "canceled"
    assert steps(tl) == [("prepare_workspace", "succeeded"), ("run_agent", "canceled")]
    assert_no_duplicates(tl)
    assert pids_with_env("CODEX_STANDIN_MARK", mark) == {}, "the agent outlived its job"


async def test_over_a_lossy_convex_each_run_is_complete_when_it_turns_terminal(
    dev_server_env: WorkflowEnvironment,
    convex_backend: RunningBackend,
    convex_client: ConvexClient,
    flaky_convex: FlakyProxy,
    tmp_path: Path,
) -> None:
    """Several jobs while Convex loses one answer in five: at the moment each run's terminal
    status is written (observed by the status write itself, reading Convex directly), every
    step has ended and every artifact and event of the run is already there."""
    seen: dict[str, dict[str, Any]] = {}

    class Observed(PersistenceActivities):
        @activity.defn(name="update_run_status")
        async def update_run_status(self, update: RunStatusUpdate) -> RunStatusResult:
            if update.status in ("succeeded", "failed", "canceled"):
                page = await convex_client.query(
                    "runs:getTimelineAsOperator", {"runId": update.run_id, "limit": 500}
                )
                seen.setdefault(update.run_id, page)
            return await super().update_run_status(update)

    def observed(convex: ConvexClient, settings: Settings) -> PersistenceActivities:
        return Observed(convex, worker_id=settings.worker_id)

    async with running_stack(
        dev_server_env, convex_backend, flaky_convex, tmp_path / "data", False, observed
    ) as stack:
        remote = make_bare_repo(tmp_path)
        prompts = [
            "Add a NOTES.md [standin:events=8]",
            "Fail on purpose [standin:exit=3]",
            "Add notes and check them",
        ]
        jobs = [
            await new_work_order(stack, remote, prompt, checks=["test -f NOTES.md"])
            for prompt in prompts
        ]
        flaky_convex.lose_one_in = 5
        handles = [await start(stack, job) for job in jobs]
        await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
        flaky_convex.lose_one_in = 0
        assert flaky_convex.lost > 0, "no answer was lost"

        for job in jobs:
            tl = await full_timeline(stack, job.work_order_id)
            assert tl["run"]["status"] in ("succeeded", "failed"), tl["run"]
            before = seen[tl["run"]["_id"]]
            assert before["run"]["status"] == "running"  # observed just before the status
            assert all(s["status"] not in ("pending", "running") for s in before["steps"])
            assert [s["_id"] for s in before["steps"]] == [s["_id"] for s in tl["steps"]]
            assert [a["_id"] for a in before["artifacts"]] == [a["_id"] for a in tl["artifacts"]]
            # Every event but the run's own final state_change was there already.
            assert [e["_id"] for e in before["events"]] == [e["_id"] for e in tl["events"]][:-1]
            assert tl["events"][-1]["data"]["status"] == tl["run"]["status"]
            assert_no_duplicates(tl)


async def test_the_local_backend_killed_and_restarted_mid_job_loses_no_record(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The backend keeps its journal under its data directory: SIGKILLed while the agent runs
    and started again on the same directory, it has every record written before, hands out
    no id twice, and the job finishes with a complete run."""
    data_dir = tmp_path / "convex"
    key = f"restart-{uuid.uuid4().hex}"
    first = start_local_backend(admin_key=key, data_dir=data_dir)
    second: RunningBackend | None = None
    proxy = FlakyProxy("127.0.0.1", first.port)
    await proxy.start()
    try:
        async with running_stack(dev_server_env, first, proxy, tmp_path / "data", False) as stack:
            remote = make_bare_repo(tmp_path)
            prompt = "Add a NOTES.md [standin:sleep=3]"
            job = await new_work_order(stack, remote, prompt, checks=["test -f NOTES.md"])
            handle = await start(stack, job)
            before: dict[str, Any] = {}

            async def agent_running() -> bool:
                run = await stack.convex.query(
                    "runs:getLatestForWorkOrderAsOperator",
                    {"workflowRequestId": job.work_order_id},
                )
                if run is None:
                    return False
                before.update(await full_timeline(stack, job.work_order_id))
                return ("run_agent", "running") in steps(before)

            await wait_until(agent_running, within=60, what="the agent step to run")
            # A crash, not a clean stop: SIGKILL to the backend's process group (tsx and the
            # node process it runs), which this test started in a session of its own.
            os.killpg(first.pid, signal.SIGKILL)
            first.stop()
            second = start_local_backend(admin_key=key, data_dir=data_dir)
            proxy.retarget("127.0.0.1", second.port)

            result = await handle.result()
            assert result.status == "succeeded"
            tl = await full_timeline(stack, job.work_order_id)
    finally:
        await proxy.stop()
        first.stop()
        if second is not None:
            second.stop()

    assert tl["run"]["_id"] == before["run"]["_id"]  # the same run, not a new one
    assert steps(tl) == [
        ("prepare_workspace", "succeeded"),
        ("run_agent", "succeeded"),
        ("check 1: test -f NOTES.md", "succeeded"),
        ("commit_and_push", "succeeded"),
        ("open_pull_request", "skipped"),
    ]
    assert_no_duplicates(tl)
    # Everything written before the crash is still there, under the same ids.
    for kind in ("steps", "events", "artifacts"):
        ids = {d["_id"] for d in tl[kind]}
        assert {d["_id"] for d in before[kind]} <= ids, kind
    assert {a["type"] for a in tl["artifacts"]} == {"log", "diff"}
