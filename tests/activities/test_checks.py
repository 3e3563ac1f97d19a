"""run_check: one shell command, its own log, pass, fail and time limit as results."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from activities.jobs import JobActivities
from activities.models import PrepareWorkspaceInput, RunCheckInput, Workspace
from tests.activities.conftest import (
    RUN_ID,
    WORKFLOW_ID,
    RecordingEnvironment,
    make_config,
    read,
)


@pytest.fixture
async def workspace(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> Workspace:
    return await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="check1", repo=str(remote))
    )


async def test_passing_check(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, tmp_path: Path
) -> None:
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(workspace=workspace.path, command="test -f README.md && echo ok", index=0),
    )
    assert result.passed and result.exit_code == 0 and not result.timed_out
    assert result.command == "test -f README.md && echo ok" and result.index == 0
    expected_log = tmp_path / "data" / "artifacts" / WORKFLOW_ID / RUN_ID / "checks"
    assert Path(result.log_path) == (expected_log / "check-000.log").resolve()
    assert read(result.log_path) == "ok\n"
    assert result.log_url == Path(result.log_path).as_uri()
    assert result.output_tail == "ok"


async def test_failing_check_is_a_result_with_its_output(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace
) -> None:
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(
            workspace=workspace.path, command="echo 'lint: 2 problems' >&2; exit 3", index=1
        ),
    )
    assert not result.passed and result.exit_code == 3 and not result.timed_out
    assert result.output_tail == "lint: 2 problems"
    assert Path(result.log_path).name == "check-001.log"


async def test_check_time_limit(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace
) -> None:
    started = time.monotonic()
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(
            workspace=workspace.path, command="echo start; sleep 60", index=2, timeout_seconds=0.5
        ),
    )
    assert result.timed_out and not result.passed and result.exit_code is None
    assert time.monotonic() - started < 5
    assert result.output_tail.startswith("start\n")
    assert "time limit of 0.5 s" in result.output_tail


async def test_checks_do_not_see_worker_secrets(
    activity_env: RecordingEnvironment,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CONVEX_ADMIN_KEY", "convex-admin-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")  # the agent's, not the checks'
    jobs = JobActivities(make_config(tmp_path, agent_env_allow=("OPENAI_API_KEY", "MY_*")))
    monkeypatch.setenv("MY_SETTING", "visible")
    result = await activity_env.run(
        jobs.run_check,
        RunCheckInput(
            workspace=workspace.path,
            command='test -z "$CONVEX_ADMIN_KEY$GITHUB_TOKEN$OPENAI_API_KEY"'
            ' && test "$MY_SETTING" = visible && test -n "$PATH"',
            index=3,
        ),
    )
    assert result.passed, result.output_tail
