"""commit_and_push against a real bare repository: the push lands, nothing-to-commit is a clear
outcome, a retry never makes a second commit, a recommit replaces our own push but never
someone else's, and the diff artifact is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.jobs import JobActivities
from activities.models import (
    CaptureDiffInput,
    CommitAndPushInput,
    PrepareWorkspaceInput,
    RunAgentInput,
    Workspace,
)
from tests.activities.conftest import (
    RUN_ID,
    WORKFLOW_ID,
    RecordingEnvironment,
    exists,
    push_commit,
    read,
)
from tests.git_repos import git


@pytest.fixture
async def workspace(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> Workspace:
    return await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="push1", repo=str(remote))
    )


def commit_input(
    ws: Workspace, remote: Path, message: str = "Add a greeting"
) -> CommitAndPushInput:
    return CommitAndPushInput(
        workspace=ws.path, repo=str(remote), branch=ws.branch, base_sha=ws.base_sha, message=message
    )


async def test_changes_are_committed_pushed_and_diffed(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    workspace: Workspace,
    remote: Path,
    tmp_path: Path,
) -> None:
    await activity_env.run(
        jobs.run_agent, RunAgentInput(workspace=workspace.path, prompt="Add a greeting")
    )
    result = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    assert result.changed and result.committed and result.pushed
    assert result.commit_sha == git("rev-parse", f"refs/heads/{workspace.branch}", cwd=remote)
    assert git("log", "-1", "--format=%an <%ae>|%cn|%s", result.commit_sha, cwd=remote) == (
        "Jangar Test <jangar-test@example.test>|Jangar Test|Add a greeting"
    )
    assert git("rev-parse", f"{result.commit_sha}^", cwd=remote) == workspace.base_sha
    assert (result.files_changed, result.insertions, result.deletions) == (1, 1, 0)
    diff = Path(result.diff_path or "")
    assert diff == (tmp_path / "data" / "artifacts" / WORKFLOW_ID / RUN_ID / "diff.patch").resolve()
    assert result.diff_url == diff.as_uri()
    text = read(diff)
    assert "+++ b/NOTES.md" in text and "+- Add a greeting" in text
    # The diff applies to the base: it is a faithful record of the change.
    check = tmp_path / "apply-check"
    git("clone", "-q", str(remote), str(check), cwd=tmp_path)
    git("apply", "--check", str(diff), cwd=check)


async def test_nothing_to_commit_is_a_clear_outcome(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, remote: Path
) -> None:
    result = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    assert not result.changed and not result.committed and not result.pushed
    assert result.reason == "the agent made no changes"
    assert result.commit_sha is None and result.diff_url is None and result.diff_path is None
    assert git("ls-remote", "--heads", str(remote), workspace.branch, cwd=remote) == ""


async def test_retry_does_not_commit_twice(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, remote: Path
) -> None:
    (Path(workspace.path) / "feature.txt").write_text("feature\n")
    first = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    second = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    assert first.committed and not second.committed
    assert second.changed and second.pushed and second.commit_sha == first.commit_sha
    count = git("rev-list", "--count", f"{workspace.base_sha}..{workspace.branch}", cwd=remote)
    assert count == "1"
    assert second.files_changed == 1 and exists(second.diff_path or "")


async def test_recommit_after_a_fresh_prepare_replaces_our_earlier_push(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, remote: Path
) -> None:
    (Path(workspace.path) / "a.txt").write_text("first try\n")
    first = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    # The workflow is retried: prepare again (reuse), the agent redoes its work differently.
    again = await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="push1", repo=str(remote))
    )
    assert again.reused
    (Path(again.path) / "a.txt").write_text("second try\n")
    second = await activity_env.run(jobs.commit_and_push, commit_input(again, remote))
    assert second.committed and second.commit_sha != first.commit_sha
    assert git("rev-parse", f"refs/heads/{again.branch}", cwd=remote) == second.commit_sha


async def test_someone_elses_push_is_never_overwritten(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    workspace: Workspace,
    remote: Path,
    tmp_path: Path,
) -> None:
    theirs = push_commit(remote, workspace.branch, "theirs.txt", "theirs\n", tmp_path)
    (Path(workspace.path) / "ours.txt").write_text("ours\n")
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    assert caught.value.type == "PushRejected" and caught.value.non_retryable
    assert git("rev-parse", f"refs/heads/{workspace.branch}", cwd=remote) == theirs


async def test_hooks_written_by_the_agent_do_not_run(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, remote: Path
) -> None:
    hooks = Path(workspace.path) / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("pre-commit", "commit-msg", "pre-push"):
        (hooks / hook).write_text("#!/bin/sh\necho hook ran >&2\nexit 1\n")
        (hooks / hook).chmod(0o755)
    (Path(workspace.path) / "x.txt").write_text("x\n")
    result = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    assert result.pushed


async def test_reverting_commits_count_as_no_change(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, remote: Path
) -> None:
    path = Path(workspace.path)
    (path / "tmp.txt").write_text("tmp\n")
    git("add", "-A", cwd=path)
    git("commit", "-qm", "add tmp", cwd=path)
    git("rm", "-q", "tmp.txt", cwd=path)
    git("commit", "-qm", "remove tmp", cwd=path)
    result = await activity_env.run(jobs.commit_and_push, commit_input(workspace, remote))
    assert not result.changed and not result.pushed
    assert result.reason == "the agent's commits leave the files as they were on the base branch"


async def test_capture_diff_records_uncommitted_work_without_pushing(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace, remote: Path
) -> None:
    """After a failed step the diff is still recorded: edits and new files, nothing pushed."""
    ws = Path(workspace.path)
    (ws / "README.md").write_text("changed by the agent\n")
    (ws / "new_file.txt").write_text("brand new\n")
    diff = await activity_env.run(
        jobs.capture_diff, CaptureDiffInput(workspace=workspace.path, base_sha=workspace.base_sha)
    )
    assert diff.changed and diff.files_changed == 2
    text = read(diff.diff_path)
    assert "+++ b/new_file.txt" in text and "+changed by the agent" in text
    assert diff.diff_url == Path(diff.diff_path).as_uri()
    assert git("rev-parse", "HEAD", cwd=ws) == workspace.base_sha, "capture_diff committed"
    assert git("ls-remote", "--heads", str(remote), workspace.branch, cwd=remote) == ""


async def test_capture_diff_of_an_untouched_workspace_is_empty(
    activity_env: RecordingEnvironment, jobs: JobActivities, workspace: Workspace
) -> None:
    diff = await activity_env.run(
        jobs.capture_diff, CaptureDiffInput(workspace=workspace.path, base_sha=workspace.base_sha)
    )
    assert not diff.changed and diff.files_changed == 0
    assert read(diff.diff_path) == ""
