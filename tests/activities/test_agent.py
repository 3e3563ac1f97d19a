"""run_agent with the stand-in Codex CLI: edits, progress parsing and its bound, the log, a
failing agent, the time limit and cancellation (whole process group gone), and an environment
without the worker's secrets."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.jobs import JobActivities
from activities.models import MAX_PROGRESS, PrepareWorkspaceInput, RunAgentInput, Workspace
from tests.activities.conftest import (
    RUN_ID,
    WORKFLOW_ID,
    RecordingEnvironment,
    gone_soon,
    make_config,
    read,
)


@pytest.fixture
async def workspace(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> Workspace:
    return await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="agent1", repo=str(remote))
    )


async def test_agent_edits_files_and_reports_progress(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, tmp_path: Path
) -> None:
    result = await activity_env.run(
        jobs.run_agent, RunAgentInput(workspace=workspace.path, prompt="Add a greeting")
    )
    assert result.succeeded and result.outcome == "succeeded" and result.exit_code == 0
    assert (Path(workspace.path) / "NOTES.md").read_text() == "- Add a greeting\n"
    types = [p.type for p in result.progress]
    assert types[:2] == ["thread.started", "turn.started"]
    assert types[-1] == "turn.completed"
    items = {p.item_type: p.summary for p in result.progress if p.item_type}
    assert items["file_change"] == "file changes (completed): add NOTES.md"
    assert items["command_execution"] == "ran `ls` (exit 0)"
    assert result.final_message == "Added the request to NOTES.md: Add a greeting"
    assert result.thread_id and result.usage and result.usage.output_tokens == 42
    assert [p.seq for p in result.progress] == sorted(p.seq for p in result.progress)
    # The full output is the log artifact, under the run's directory, with a file:// URL.
    log = Path(result.log_path)
    assert log == (tmp_path / "data" / "artifacts" / WORKFLOW_ID / RUN_ID / "agent.log").resolve()
    assert result.log_url == log.as_uri()
    assert len(read(log).splitlines()) == result.lines == result.json_events
    # Heartbeats carried progress.
    assert activity_env.heartbeats
    last = activity_env.heartbeats[-1][0]
    assert set(last) == {"pid", "lines", "json_events", "last_event_type", "elapsed_seconds"}


async def test_progress_is_bounded_first_and_latest_kept(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEX_STANDIN_EXTRA_EVENTS", "200")
    result = await activity_env.run(
        jobs.run_agent, RunAgentInput(workspace=workspace.path, prompt="many steps")
    )
    assert len(result.progress) == MAX_PROGRESS
    assert result.progress_dropped == result.json_events - 1 - MAX_PROGRESS  # item.started: none
    assert result.progress[0].type == "thread.started"
    assert result.progress[-1].type == "turn.completed"
    assert result.progress[-2].item_type == "agent_message"


async def test_non_json_noise_is_logged_not_parsed(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEX_STANDIN_NOISE", "1")
    result = await activity_env.run(
        jobs.run_agent, RunAgentInput(workspace=workspace.path, prompt="noisy")
    )
    assert result.succeeded
    assert result.lines == result.json_events + 3
    log = read(result.log_path)
    assert "a warning on stderr" in log and "{not json either" in log


async def test_failing_agent_is_a_result_with_a_reason(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace
) -> None:
    result = await activity_env.run(
        jobs.run_agent,
        RunAgentInput(workspace=workspace.path, prompt="please fail [standin:exit=3]"),
    )
    assert not result.succeeded and result.outcome == "failed" and result.exit_code == 3
    assert result.failure_reason == (
        "the agent exited 3: stand-in agent asked to fail with exit code 3"
    )
    assert any(p.type == "turn.failed" for p in result.progress)
    assert not (Path(workspace.path) / "NOTES.md").exists()


async def test_time_limit_kills_the_process_group(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pid_file, child_file = tmp_path / "agent.pid", tmp_path / "child.pid"
    monkeypatch.setenv("CODEX_STANDIN_SLEEP", "60")
    monkeypatch.setenv("CODEX_STANDIN_PID_FILE", str(pid_file))
    monkeypatch.setenv("CODEX_STANDIN_CHILD_PID_FILE", str(child_file))
    monkeypatch.setenv("CODEX_STANDIN_IGNORE_SIGTERM", "1")  # SIGKILL after the grace, then
    started = time.monotonic()
    result = await activity_env.run(
        jobs.run_agent,
        RunAgentInput(workspace=workspace.path, prompt="slow", timeout_seconds=1.0),
    )
    assert result.outcome == "timed_out" and result.timed_out and not result.succeeded
    assert result.exit_code is None
    assert "time limit of 1 s" in (result.failure_reason or "")
    assert time.monotonic() - started < 10
    for pid_path in (pid_file, child_file):
        pid = int(pid_path.read_text())
        assert gone_soon(pid), f"{pid_path.name}: pid {pid} outlived the time limit"
    assert [p.type for p in result.progress] == ["thread.started", "turn.started"]


async def test_cancellation_kills_the_process_group(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pid_file, child_file = tmp_path / "agent.pid", tmp_path / "child.pid"
    monkeypatch.setenv("CODEX_STANDIN_SLEEP", "60")
    monkeypatch.setenv("CODEX_STANDIN_PID_FILE", str(pid_file))
    monkeypatch.setenv("CODEX_STANDIN_CHILD_PID_FILE", str(child_file))
    task = asyncio.create_task(
        activity_env.run(jobs.run_agent, RunAgentInput(workspace=workspace.path, prompt="slow"))
    )
    for _ in range(500):
        if child_file.exists() and child_file.read_text():
            break
        await asyncio.sleep(0.02)
    agent_beats = [beat[0] for beat in activity_env.heartbeats if beat]  # git's carry no details
    assert any(beat["pid"] == int(pid_file.read_text()) for beat in agent_beats)
    activity_env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid_path in (pid_file, child_file):
        pid = int(pid_path.read_text())
        assert gone_soon(pid), f"{pid_path.name}: pid {pid} outlived the cancellation"


async def test_agent_environment_has_no_worker_secrets(
    activity_env: RecordingEnvironment,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    secrets = {
        "CONVEX_ADMIN_KEY": "convex-admin-secret",
        "CONVEX_DEPLOY_KEY": "convex-deploy-secret",
        "CONVEX_SELF_HOSTED_ADMIN_KEY": "convex-self-hosted-secret",
        "CONVEX_URL": "https://happy-otter-123.convex.cloud",
        "TEMPORAL_API_KEY": "temporal-secret",
        "GITHUB_TOKEN": "ghp_secret",
        "GH_TOKEN": "gh_secret",
        "OPENAI_API_KEY": "sk-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "SERVICE_PASSWORD": "pw-secret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "env.json"
    monkeypatch.setenv("CODEX_STANDIN_ENV_DUMP", str(dump))
    config = make_config(
        tmp_path,
        agent_env_allow=("CODEX_STANDIN_*", "OPENAI_API_KEY", "CONVEX_ADMIN_KEY"),
        github_token="ghp_secret",
    )
    result = await activity_env.run(
        JobActivities(config).run_agent,
        RunAgentInput(workspace=workspace.path, prompt="show env"),
    )
    assert result.succeeded
    env = json.loads(dump.read_text())
    leaked = {name for name, value in env.items() if value in secrets.values()}
    assert leaked == {"OPENAI_API_KEY"}, "only the variable named exactly in the allow-list"
    assert "CONVEX_ADMIN_KEY" not in env, "Convex keys never pass, even when allowed"
    assert env["PATH"] and env["HOME"]


async def test_prompt_starting_with_a_dash_is_not_an_option(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace
) -> None:
    result = await activity_env.run(
        jobs.run_agent, RunAgentInput(workspace=workspace.path, prompt="--help me")
    )
    assert result.succeeded
    assert (Path(workspace.path) / "NOTES.md").read_text() == "- --help me\n"


async def test_missing_agent_command_is_not_retryable(
    activity_env: RecordingEnvironment, workspace: Workspace, tmp_path: Path
) -> None:
    config = make_config(
        tmp_path,
        codex_command=(
            "/nonexistent/codex",
            "exec",
        ),
    )
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            JobActivities(config).run_agent,
            RunAgentInput(workspace=workspace.path, prompt="x"),
        )
    assert caught.value.type == "AgentNotFound" and caught.value.non_retryable
    assert "JANGAR_CODEX_COMMAND" in caught.value.message


async def test_workspace_outside_the_data_dir_is_refused(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs.run_agent, RunAgentInput(workspace=str(tmp_path), prompt="x"))
    assert caught.value.type == "WorkspaceMissing" and caught.value.non_retryable


async def test_artifact_base_url_replaces_file_urls(
    activity_env: RecordingEnvironment, workspace: Workspace, tmp_path: Path
) -> None:
    config = make_config(tmp_path, artifact_base_url="https://artifacts.example/jangar/")
    result = await activity_env.run(
        JobActivities(config).run_agent, RunAgentInput(workspace=workspace.path, prompt="x")
    )
    assert result.log_url == f"https://artifacts.example/jangar/{WORKFLOW_ID}/{RUN_ID}/agent.log"


async def test_agent_without_json_output_still_works(
    activity_env: RecordingEnvironment, workspace: Workspace, tmp_path: Path
) -> None:
    plain = [c for c in make_config(tmp_path).codex_command if c != "--json"]
    config = make_config(tmp_path, codex_command=plain)
    result = await activity_env.run(
        JobActivities(config).run_agent, RunAgentInput(workspace=workspace.path, prompt="plain")
    )
    assert result.succeeded and result.json_events == 0 and result.progress == ()
    assert result.lines > 0 and "[stand-in] updated NOTES.md" in read(result.log_path)
