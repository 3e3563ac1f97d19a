"""run_agent with the stand-in Codex CLI, sandboxed: the edit checkpointed to Convex storage,
progress written live, the log uploaded, a failing agent, the time limit, the budget,
cancellation, a worker shutting down, and an environment without the worker's secrets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.attempts import WORKER_SHUTDOWN
from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.models import JobLimits
from tests.activities.conftest import Prepared, RecordingEnvironment, make_config, make_sandbox
from tests.git_repos import git
from tests.processes import pids_with_env
from tests.worker.conftest import wait_until


async def stored_text(convex: ConvexClient, storage_id: str) -> str:
    url = await convex.query("files:getUrl", {"storageId": storage_id})
    return (await convex.download(str(url))).decode()


async def agent_events(convex: ConvexClient, run_id: str) -> list[dict[str, object]]:
    page = await convex.query("runs:getTimelineAsOperator", {"runId": run_id, "limit": 500})
    return [e["data"] for e in page["events"] if "agent" in (e.get("data") or {})]


async def test_the_agent_edits_and_its_work_is_checkpointed_to_convex(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    convex_client: ConvexClient,
) -> None:
    result = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    assert result.succeeded and result.outcome == "succeeded" and result.exit_code == 0
    ws = Path(jobs.workspaces.path_for(prepared.order_id))
    assert (ws / "NOTES.md").read_text() == "- Add a greeting\n"
    # One commit on top of the start, bundled to Convex storage, with the diff beside it.
    state = result.checkpoint
    assert state.changed and state.base_sha == prepared.workspace.state.base_sha
    assert git("rev-parse", "HEAD", cwd=ws) == state.commit_sha
    assert git("rev-parse", f"{state.commit_sha}^", cwd=ws) == state.base_sha
    assert git("status", "--porcelain", cwd=ws) == ""
    assert state.bundle_storage_id is not None and result.diff is not None
    assert "+- Add a greeting" in await stored_text(convex_client, result.diff.storage_id)
    assert result.files_changed == 1 and result.insertions == 1
    # The log is in storage too, and every progress summary reached Convex while it ran.
    assert result.log is not None
    log = await stored_text(convex_client, result.log.storage_id)
    assert len(log.splitlines()) == result.lines == result.json_events
    events = await agent_events(convex_client, prepared.run_id)
    assert result.events_recorded == len(events) > 0 and not result.pending_events
    kinds = [e["agent"]["type"] for e in events]  # type: ignore[index]
    assert kinds[:2] == ["thread.started", "turn.started"] and kinds[-1] == "turn.completed"
    assert result.final_message == "Added the request to NOTES.md: Add a greeting"
    assert result.usage is not None and result.usage.output_tokens == 42
    # Heartbeats carried what a retry needs: the worker, and the usage so far.
    last = activity_env.heartbeats[-1][0]
    assert last["worker"] == "test-worker" and "usage" in last


async def test_progress_reaches_convex_while_the_agent_still_runs(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    convex_client: ConvexClient,
) -> None:
    """The stand-in starts its turn, then thinks for 5 s: the turn's start is in Convex while
    the step is still running, not only once the agent exits."""
    step = asyncio.create_task(
        activity_env.run(jobs.run_agent, prepared.agent("Think first [standin:sleep=5]"))
    )
    seen: list[str] = []
    try:
        async with asyncio.timeout(20):
            while "turn.started" not in seen:
                assert not step.done(), "the agent ended before any progress was seen"
                events = await agent_events(convex_client, prepared.run_id)
                seen = [str(e["agent"]["type"]) for e in events]  # type: ignore[index]
                await asyncio.sleep(0.1)
        assert not step.done()  # still thinking: the event was live
        assert "turn.completed" not in seen
    finally:
        result = await step
    assert result.succeeded


async def test_the_same_tree_gives_the_same_commit_on_a_retry(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    """A retried agent step starts from the checkpoint it was given (never the tree the
    earlier attempt left) and the deterministic commit makes the work land exactly once."""
    first = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    ws = Path(jobs.workspaces.path_for(prepared.order_id))
    (ws / "stray.txt").write_text("left by a killed attempt")
    again = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    assert again.checkpoint.commit_sha == first.checkpoint.commit_sha
    assert (ws / "NOTES.md").read_text() == "- Add a greeting\n"  # once, not twice
    assert not (ws / "stray.txt").exists()


async def test_a_failing_agent_is_a_result_with_its_reason_and_log(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    result = await activity_env.run(jobs.run_agent, prepared.agent("fix [standin:exit=3]"))
    assert not result.succeeded and result.outcome == "failed" and result.exit_code == 3
    assert result.failure_reason is not None and "exited 3" in result.failure_reason
    assert "asked to fail" in result.failure_reason
    assert result.log is not None and not result.checkpoint.changed
    record = result.step_record()
    assert record.status == "failed" and record.payload is not None
    assert record.payload["type"] == "AgentFailed"


async def test_the_time_limit_stops_the_agent(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    inp = prepared.agent("slow [standin:sleep=30]", limits=JobLimits(agent_timeout_seconds=1))
    result = await activity_env.run(jobs.run_agent, inp)
    assert result.outcome == "timed_out" and result.timed_out and result.exit_code is None
    assert result.duration_ms < 10_000


async def test_a_run_over_its_token_budget_is_stopped_as_budget_exceeded(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    inp = prepared.agent(
        "loop [standin:turns=50] [standin:turn-sleep=0.2]",
        limits=JobLimits(max_tokens=500),
    )
    result = await activity_env.run(jobs.run_agent, inp)
    assert result.outcome == "budget_exceeded" and not result.succeeded
    assert result.failure_reason is not None and "budget of 500" in result.failure_reason
    assert result.usage is not None and 500 < result.usage.total < 1500  # stopped early
    record = result.step_record()
    assert record.payload is not None and record.payload["type"] == "BudgetExceeded"


async def test_the_time_budget_counts_earlier_attempts(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    # Attempt 2 of a run whose first attempt already used 9.5 s of a 10 s budget.
    activity_env.info = dataclasses.replace(
        activity_env.info, attempt=2, heartbeat_details=[{"agent_ms": 9500}]
    )
    inp = prepared.agent("slow [standin:sleep=30]", limits=JobLimits(max_agent_seconds=10))
    result = await activity_env.run(jobs.run_agent, inp)
    assert result.outcome == "budget_exceeded" and result.duration_ms < 5000
    assert result.attempts.count == 2
    assert "stopped heartbeating without a result" in result.attempts.reasons[0]


async def test_cancellation_stops_the_agent(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mark = uuid.uuid4().hex  # reaches the agent through the CODEX_STANDIN_* allow-list
    monkeypatch.setenv("CODEX_STANDIN_MARK", mark)
    task = asyncio.create_task(
        activity_env.run(jobs.run_agent, prepared.agent("slow [standin:sleep=30]"))
    )

    async def agent_running() -> bool:
        started = any(isinstance(h[0], dict) and h[0].get("pid") for h in activity_env.heartbeats)
        return started and bool(pids_with_env("CODEX_STANDIN_MARK", mark))

    await wait_until(agent_running, within=10, what="the agent process")
    activity_env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)  # well before the agent's own 30 s

    async def agent_gone() -> bool:
        return not pids_with_env("CODEX_STANDIN_MARK", mark)

    await wait_until(agent_gone, within=5, what="the agent process to be gone")


async def test_a_worker_shutting_down_hands_the_agent_over(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    task = asyncio.create_task(
        activity_env.run(jobs.run_agent, prepared.agent("slow [standin:sleep=30]"))
    )
    await asyncio.wait_for(activity_env.beating.wait(), 10)
    activity_env.worker_shutdown()
    with pytest.raises(ApplicationError) as handed:
        await asyncio.wait_for(task, 10)
    assert handed.value.type == WORKER_SHUTDOWN and not handed.value.non_retryable
    assert activity_env.heartbeats[-1][0]["handover"] is True


async def test_the_agent_sees_none_of_the_worker_secrets(
    activity_env: RecordingEnvironment,
    convex_client: ConvexClient,
    prepared: Prepared,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEX_ADMIN_KEY", "canary-convex-5f2a")
    monkeypatch.setenv("GITHUB_TOKEN", "canary-github-77b1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-agents-own")
    config = make_config(tmp_path, agent_env_allow=("OPENAI_API_KEY", "CODEX_STANDIN_*"))
    jobs = JobActivities(config, convex=convex_client, sandbox=make_sandbox(config))
    inp = prepared.agent("dump the env")
    monkeypatch.setenv("CODEX_STANDIN_ENV_DUMP", "env.json")  # written in the workspace
    await activity_env.run(jobs.run_agent, inp)
    ws = jobs.workspaces.path_for(prepared.order_id)
    seen = json.loads(git("show", "HEAD:env.json", cwd=ws))
    assert seen["OPENAI_API_KEY"] == "sk-the-agents-own"  # named: passes
    assert "CONVEX_ADMIN_KEY" not in seen and "GITHUB_TOKEN" not in seen
    assert seen["HOME"] != str(Path.home())
    assert seen["CODEX_HOME"].startswith(seen["HOME"])


async def test_a_missing_agent_command_is_not_retryable(
    activity_env: RecordingEnvironment,
    convex_client: ConvexClient,
    prepared: Prepared,
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, codex_command=("/nonexistent/codex", "exec"))
    jobs = JobActivities(config, convex=convex_client, sandbox=make_sandbox(config))
    with pytest.raises(ApplicationError) as refused:
        await activity_env.run(jobs.run_agent, prepared.agent())
    assert refused.value.type == "AgentNotFound" and refused.value.non_retryable


async def test_the_logs_url_is_served_by_convex(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    convex_client: ConvexClient,
) -> None:
    result = await activity_env.run(jobs.run_agent, prepared.agent())
    assert result.log is not None
    url = await convex_client.query("files:getUrl", {"storageId": result.log.storage_id})
    async with httpx.AsyncClient() as client:
        answer = await client.get(str(url))
    assert answer.status_code == 200 and "thread.started" in answer.text
