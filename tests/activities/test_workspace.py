"""The workspace against real bare repositories: prepare (fresh clone, reuse, branch names,
base branches, errors that say what is wrong without leaking credentials), hold (the exact
checkpoint, rebuilt on a worker that never saw the job), and the disk sweep."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.models import PrepareWorkspaceInput
from activities.storage import FileStore
from activities.workspace import Workspaces
from tests.activities.conftest import (
    Prepared,
    RecordingEnvironment,
    job_spec,
    make_config,
    push_commit,
)
from tests.git_repos import git, make_bare_repo


async def test_fresh_clone_makes_the_default_work_branch(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    ws = await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo1", str(remote)))
    )
    path = jobs.workspaces.path_for(ws.state.work_order_id)
    assert path == (tmp_path / "data" / "workspaces" / "wo1").resolve()
    assert ws.state.branch == "codex/wo1" and ws.state.commit_sha == ws.state.base_sha
    assert ws.base_branch == "main"
    assert ws.state.base_sha == git("rev-parse", "main", cwd=remote)
    assert not ws.reused
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=path) == "codex/wo1"
    assert git("rev-parse", "HEAD", cwd=path) == ws.state.base_sha
    assert (path / "README.md").read_text() == "# Sample\n"


async def test_branch_hint_and_explicit_base_branch(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    develop_sha = push_commit(remote, "develop", "dev.txt", "dev\n", tmp_path)
    ws = await activity_env.run(
        jobs.prepare_workspace,
        PrepareWorkspaceInput(
            job=job_spec("wo2", str(remote), base_branch="develop", branch="feature/x")
        ),
    )
    assert (ws.state.branch, ws.base_branch, ws.state.base_sha) == (
        "feature/x",
        "develop",
        develop_sha,
    )
    assert (jobs.workspaces.path_for(ws.state.work_order_id) / "dev.txt").exists()


async def test_default_branch_follows_the_remote_head(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    trunk = make_bare_repo(tmp_path, name="trunky", default_branch="trunk")
    ws = await activity_env.run(
        jobs.prepare_workspace,
        PrepareWorkspaceInput(job=job_spec("wo3", f"file://{trunk}")),
    )
    assert ws.base_branch == "trunk"
    assert ws.repo == f"file://{trunk}"


async def test_retry_reuses_and_cleans_the_workspace(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    inp = PrepareWorkspaceInput(job=job_spec("wo4", str(remote)))
    first = await activity_env.run(jobs.prepare_workspace, inp)
    path = Path(str(jobs.workspaces.path_for("wo4")))
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
    assert (
        second.reused
        and str(jobs.workspaces.path_for("wo4")) == str(jobs.workspaces.path_for("wo4"))
        and second.state.branch == first.state.branch
    )
    assert second.state.base_sha == new_main  # fetched again
    assert git("rev-parse", "HEAD", cwd=path) == new_main
    assert git("status", "--porcelain", "--ignored", cwd=path) == ""
    assert (path / "README.md").read_text() == "# Sample\n"
    assert not (path / "junk.txt").exists() and not (path / "untracked.txt").exists()


async def test_a_directory_of_another_repo_is_replaced(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path, tmp_path: Path
) -> None:
    other = make_bare_repo(tmp_path, name="other")
    await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo5", str(other)))
    )
    ws = await activity_env.run(
        jobs.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo5", str(remote)))
    )
    assert not ws.reused
    assert git(
        "config",
        "--get",
        "remote.origin.url",
        cwd=jobs.workspaces.path_for(ws.state.work_order_id),
    ) == str(remote)


async def test_missing_local_repository_is_not_retryable(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace,
            PrepareWorkspaceInput(job=job_spec("wo6", str(tmp_path / "nope.git"))),
        )
    assert caught.value.type == "RepositoryNotFound" and caught.value.non_retryable


async def test_a_directory_that_is_not_a_repository(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo7", str(plain)))
        )
    assert caught.value.type == "RepositoryNotFound" and caught.value.non_retryable
    assert "repository not found" in caught.value.message


async def test_missing_base_branch_names_the_branches(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace,
            PrepareWorkspaceInput(job=job_spec("wo8", str(remote), base_branch="release")),
        )
    assert caught.value.type == "BaseBranchNotFound" and caught.value.non_retryable
    assert "'release'" in caught.value.message and "main" in caught.value.message


async def test_work_branch_equal_to_the_default_base_is_refused(
    activity_env: RecordingEnvironment, jobs: JobActivities, remote: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace,
            PrepareWorkspaceInput(job=job_spec("wo9", str(remote), branch="main")),
        )
    assert caught.value.type == "InvalidBranch" and caught.value.non_retryable


async def test_empty_repository_has_no_base(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.git"
    git("init", "-q", "--bare", str(empty), cwd=tmp_path)
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo10", str(empty)))
        )
    assert caught.value.type == "BaseBranchNotFound"


async def test_unreachable_remote_is_retryable_and_a_token_in_the_url_is_refused(
    activity_env: RecordingEnvironment, jobs: JobActivities, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as refused:  # credentials never ride in a repo URL
        job_spec("wo11", "https://someone:s3cr3t-t0ken@127.0.0.1:9/o/w.git")
    assert "s3cr3t-t0ken" not in str(refused.value)
    repo = "https://127.0.0.1:9/octo/widgets.git"
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo11", repo))
        )
    assert caught.value.type == "GitNetworkError" and not caught.value.non_retryable
    # The failed clone left no half-made mirror for the next attempt to trust.
    mirror = jobs.workspaces.cache.mirror_path(repo)
    assert not mirror.exists() and not list(mirror.parent.glob("mirror.tmp-*"))


async def test_hold_gives_the_exact_checkpoint_even_after_a_dirty_attempt(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    path = jobs.workspaces.path_for(prepared.order_id)
    (path / "NOTES.md").write_text("garbled by a killed attempt\n")
    (path / "stray.txt").write_text("x\n")
    async with jobs.workspaces.hold(agent.checkpoint) as ws:
        assert git("rev-parse", "HEAD", cwd=ws) == agent.checkpoint.commit_sha
        assert git("status", "--porcelain", "--ignored", cwd=ws) == ""
        assert (ws / "NOTES.md").read_text() == "- Add a greeting\n"


async def test_a_worker_that_never_saw_the_job_rebuilds_it_from_storage(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    convex_client: ConvexClient,
    tmp_path: Path,
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    config = make_config(tmp_path / "second-worker")
    other = Workspaces(config, files=FileStore(convex_client))
    async with other.hold(agent.checkpoint) as ws:
        assert ws.is_relative_to(config.data_dir.resolve())
        assert git("rev-parse", "HEAD", cwd=ws) == agent.checkpoint.commit_sha
        assert (ws / "NOTES.md").read_text() == "- Add a greeting\n"


async def test_a_state_whose_bundle_lacks_its_commit_is_refused(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    convex_client: ConvexClient,
    tmp_path: Path,
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    forged = agent.checkpoint.model_copy(update={"commit_sha": "c" * 40})
    other = Workspaces(make_config(tmp_path / "w2"), files=FileStore(convex_client))
    with pytest.raises(ApplicationError) as refused:
        async with other.hold(forged):
            pass
    assert refused.value.type == "CheckpointInvalid" and refused.value.non_retryable


async def test_the_sweep_removes_expired_workspaces_but_never_a_held_one(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared
) -> None:
    spaces = jobs.workspaces
    path = spaces.path_for(prepared.order_id)
    async with spaces.hold(prepared.workspace.state):
        assert spaces.sweep(retention_seconds=1, now=time.time() + 3600) == []
        assert path.exists()
    assert spaces.disk_bytes() > 0
    assert spaces.sweep(retention_seconds=3600) == []  # touched just now
    assert spaces.sweep(retention_seconds=1, now=time.time() + 3600) == [prepared.order_id]
    assert not path.exists() and not spaces.private_dir(prepared.order_id).joinpath("lock").exists()
