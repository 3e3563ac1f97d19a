"""prepare_workspace against real bare repositories: fresh clone, reuse on retry, branch
names, base branches, and errors that say what is wrong without leaking credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.jobs import JobActivities
from activities.models import PrepareWorkspaceInput
from tests.activities.conftest import RecordingEnvironment, push_commit
from tests.git_repos import git, make_bare_repo


async def test_fresh_clone_makes_the_default_work_branch(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    ws = await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="wo1", repo=str(remote))
    )
    path = Path(ws.path)
    assert path == (tmp_path / "data" / "workspaces" / "wo1").resolve()
    assert ws.branch == "codex/wo1"
    assert ws.base_branch == "main"
    assert ws.base_sha == git("rev-parse", "main", cwd=remote)
    assert not ws.reused
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=path) == "codex/wo1"
    assert git("rev-parse", "HEAD", cwd=path) == ws.base_sha
    assert (path / "README.md").read_text() == "# Sample\n"


async def test_branch_hint_and_explicit_base_branch(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    develop_sha = push_commit(remote, "develop", "dev.txt", "dev\n", tmp_path)
    ws = await activity_env.run(
        jobs.prepare_workspace,
        PrepareWorkspaceInput(
            work_order_id="wo2", repo=str(remote), base_branch="develop", branch="feature/x"
        ),
    )
    assert (ws.branch, ws.base_branch, ws.base_sha) == ("feature/x", "develop", develop_sha)
    assert (Path(ws.path) / "dev.txt").exists()


async def test_default_branch_follows_the_remote_head(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    trunk = make_bare_repo(tmp_path, name="trunky", default_branch="trunk")
    ws = await activity_env.run(
        jobs.prepare_workspace,
        PrepareWorkspaceInput(work_order_id="wo3", repo=f"file://{trunk}"),
    )
    assert ws.base_branch == "trunk"
    assert ws.repo == f"file://{trunk}"


async def test_retry_reuses_and_cleans_the_workspace(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    inp = PrepareWorkspaceInput(work_order_id="wo4", repo=str(remote))
    first = await activity_env.run(jobs.prepare_workspace, inp)
    path = Path(first.path)
    # What a failed earlier attempt may leave: edits, untracked and ignored files, a commit,
    # a stale index lock.
    (path / "README.md").write_text("changed\n")
    (path / "junk.txt").write_text("junk\n")
    git("add", "README.md", cwd=path)
    git("commit", "-qm", "half-done work", cwd=path)
    (path / "untracked.txt").write_text("x\n")
    (path / ".git" / "index.lock").write_text("")
    new_main = push_commit(remote, "main", "later.txt", "later\n", tmp_path)

    second = await activity_env.run(jobs.prepare_workspace, inp)
    assert second.reused and second.path == first.path and second.branch == first.branch
    assert second.base_sha == new_main  # fetched again
    assert git("rev-parse", "HEAD", cwd=path) == new_main
    assert git("status", "--porcelain", "--ignored", cwd=path) == ""
    assert (path / "README.md").read_text() == "# Sample\n"
    assert not (path / "junk.txt").exists() and not (path / "untracked.txt").exists()


async def test_a_directory_of_another_repo_is_replaced(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    other = make_bare_repo(tmp_path, name="other")
    await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="wo5", repo=str(other))
    )
    ws = await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="wo5", repo=str(remote))
    )
    assert not ws.reused
    assert git("config", "--get", "remote.origin.url", cwd=Path(ws.path)) == str(remote)


async def test_missing_local_repository_is_not_retryable(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace,
            PrepareWorkspaceInput(work_order_id="wo6", repo=str(tmp_path / "nope.git")),
        )
    assert caught.value.type == "RepositoryNotFound" and caught.value.non_retryable


async def test_a_directory_that_is_not_a_repository(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="wo7", repo=str(plain))
        )
    assert caught.value.type == "RepositoryNotFound" and caught.value.non_retryable
    assert "repository not found" in caught.value.message


async def test_missing_base_branch_names_the_branches(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace,
            PrepareWorkspaceInput(work_order_id="wo8", repo=str(remote), base_branch="release"),
        )
    assert caught.value.type == "BaseBranchNotFound" and caught.value.non_retryable
    assert "'release'" in caught.value.message and "main" in caught.value.message


async def test_work_branch_equal_to_the_default_base_is_refused(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace,
            PrepareWorkspaceInput(work_order_id="wo9", repo=str(remote), branch="main"),
        )
    assert caught.value.type == "InvalidBranch" and caught.value.non_retryable


async def test_empty_repository_has_no_base(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.git"
    git("init", "-q", "--bare", str(empty), cwd=tmp_path)
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="wo10", repo=str(empty))
        )
    assert caught.value.type == "BaseBranchNotFound"


async def test_unreachable_remote_is_retryable_and_a_token_in_the_url_is_refused(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as refused:  # credentials never ride in a repo URL
        PrepareWorkspaceInput(
            work_order_id="wo11", repo="https://someone:s3cr3t-t0ken@127.0.0.1:9/o/w.git"
        )
    assert "s3cr3t-t0ken" not in str(refused.value)
    repo = "https://127.0.0.1:9/octo/widgets.git"
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace, PrepareWorkspaceInput(work_order_id="wo11", repo=repo)
        )
    assert caught.value.type == "GitNetworkError" and not caught.value.non_retryable
    config = (tmp_path / "data" / "workspaces" / "wo11" / ".git" / "config").read_text()
    assert repo in config
