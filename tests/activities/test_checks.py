"""run_check, sandboxed, on the agent's checkpoint: pass, fail with its output, the time limit,
no network by default, no worker secrets, and the same tree on any worker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.models import RunCheckInput, WorkspaceState
from tests.activities.conftest import (
    HAVE_BWRAP,
    Prepared,
    RecordingEnvironment,
    make_config,
    make_sandbox,
)


async def checkpoint(
    env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> WorkspaceState:
    """The agent's checkpoint: the state every check starts from."""
    return (await env.run(jobs.run_agent, prepared.agent("Write a greeting"))).checkpoint


async def test_a_passing_check_on_the_agents_checkpoint(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    convex_client: ConvexClient,
) -> None:
    state = await checkpoint(activity_env, jobs, prepared)
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(state=state, command="grep -q greeting NOTES.md && echo found", index=1),
    )
    assert result.passed and result.exit_code == 0 and not result.timed_out
    assert result.log is not None
    url = await convex_client.query("files:getUrl", {"storageId": result.log.storage_id})
    assert (await convex_client.download(str(url))).decode() == "found\n"


async def test_a_failing_check_is_a_result_with_its_output(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    state = await checkpoint(activity_env, jobs, prepared)
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(state=state, command="echo 2 tests failed; exit 4", index=2),
    )
    assert not result.passed and result.exit_code == 4
    assert "2 tests failed" in result.output_tail
    assert result.step_record().payload is not None


async def test_the_time_limit_stops_a_check(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    state = await checkpoint(activity_env, jobs, prepared)
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(state=state, command="sleep 30", index=1, timeout_seconds=0.5),
    )
    assert result.timed_out and not result.passed and result.exit_code is None
    assert "time limit" in result.output_tail


async def test_a_check_that_dirtied_the_tree_does_not_leak_into_the_next(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    state = await checkpoint(activity_env, jobs, prepared)
    await activity_env.run(
        jobs.run_check, RunCheckInput(state=state, command="echo junk > junk.txt", index=1)
    )
    second = await activity_env.run(
        jobs.run_check, RunCheckInput(state=state, command="test ! -e junk.txt", index=2)
    )
    assert second.passed


@pytest.mark.skipif(not HAVE_BWRAP, reason="the network policy needs the sandbox (bubblewrap)")
@pytest.mark.parametrize(("network", "connects"), [(False, False), (True, True)])
async def test_checks_reach_the_network_only_when_allowed(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    network: bool,
    connects: bool,
) -> None:
    state = await checkpoint(activity_env, jobs, prepared)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        command = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
        result = await activity_env.run(
            jobs.run_check,
            RunCheckInput(state=state, command=f"bash -c '{command}'", index=1, network=network),
        )
    assert result.passed is connects


async def test_checks_do_not_see_the_agents_or_the_workers_secrets(
    activity_env: RecordingEnvironment,
    convex_client: ConvexClient,
    prepared: Prepared,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-agent-only")
    monkeypatch.setenv("CONVEX_ADMIN_KEY", "canary-convex-9c")
    monkeypatch.setenv("MY_SETTING", "visible")
    config = make_config(tmp_path, agent_env_allow=("OPENAI_API_KEY", "MY_*"))
    jobs = JobActivities(config, convex=convex_client, sandbox=make_sandbox(config))
    state = await checkpoint(activity_env, jobs, prepared)
    result = await activity_env.run(
        jobs.run_check, RunCheckInput(state=state, command="env | sort", index=1)
    )
    assert "MY_SETTING=visible" in result.output_tail
    assert "sk-agent-only" not in result.output_tail
    assert "canary-convex-9c" not in result.output_tail


@pytest.mark.skipif(not HAVE_BWRAP, reason="needs bubblewrap")
async def test_a_checks_own_git_reads_the_borrowed_history_and_cannot_write_the_cache(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    """The workspace borrows the repository cache's objects: the sandbox shows them read-only
    at their path (the rest of the data directory stays hidden)."""
    state = await checkpoint(activity_env, jobs, prepared)
    ws = jobs.workspaces.path_for(state.work_order_id)
    [objects] = jobs.workspaces.shared_objects(ws)
    command = (
        "git log --format=%s -2 && git status --porcelain"
        f" && (touch {objects}/planted 2>/dev/null && echo WROTE || echo READ-ONLY)"
        f" && (ls {objects.parent.parent} 2>/dev/null | wc -l)"
    )
    result = await activity_env.run(
        jobs.run_check, RunCheckInput(state=state, command=command, index=1)
    )
    assert result.passed, result.output_tail
    lines = result.output_tail.splitlines()
    assert lines[:2] == ["Write a greeting", "initial commit"]  # the checkpoint, the base
    assert "READ-ONLY" in lines and "WROTE" not in lines
    assert not (objects / "planted").exists()
