"""commit_and_push: the agent's checkpoint pushed to the work branch, from any worker; a retry
pushes once; nothing to push is a clear outcome; someone else's push is never overwritten;
a follow-up's commit lands on top of the earlier work."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.models import CommitAndPushInput, JobSpec, ParentRef, PrepareWorkspaceInput
from tests.activities.conftest import (
    Prepared,
    RecordingEnvironment,
    convex_run,
    make_config,
    make_sandbox,
    push_commit,
)
from tests.git_repos import git


def push(prepared: Prepared, state: object) -> CommitAndPushInput:
    return CommitAndPushInput(state=state, remote_branch_sha=prepared.workspace.remote_branch_sha)


async def test_the_checkpoint_is_pushed_once(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared, remote: Path
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    first = await activity_env.run(jobs.commit_and_push, push(prepared, agent.checkpoint))
    assert first.changed and first.pushed and first.commit_sha == agent.checkpoint.commit_sha
    branch = prepared.job.branch
    assert git("rev-parse", f"refs/heads/{branch}", cwd=remote) == first.commit_sha
    assert git("show", f"{branch}:NOTES.md", cwd=remote) == "- Add a greeting"
    again = await activity_env.run(jobs.commit_and_push, push(prepared, agent.checkpoint))
    assert again.changed and not again.pushed  # the remote already had it
    assert git("rev-list", "--count", f"main..{branch}", cwd=remote) == "1"


async def test_nothing_to_push_is_a_clear_outcome(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared, remote: Path
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("idle [standin:no-changes]"))
    result = await activity_env.run(jobs.commit_and_push, push(prepared, agent.checkpoint))
    assert not result.changed and not result.pushed and result.reason
    assert git("ls-remote", "--heads", str(remote), prepared.job.branch, cwd=remote) == ""


async def test_another_worker_pushes_from_the_checkpoint_alone(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    remote: Path,
    convex_client: ConvexClient,
    tmp_path: Path,
) -> None:
    """The worker that ran the agent is gone (its data directory with it): a worker with an
    empty data directory rebuilds the tree from the repository and the bundle in storage."""
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    other_config = make_config(tmp_path / "other-worker")
    other = JobActivities(other_config, convex=convex_client, sandbox=make_sandbox(other_config))
    result = await activity_env.run(other.commit_and_push, push(prepared, agent.checkpoint))
    assert result.pushed
    assert git("rev-parse", f"refs/heads/{prepared.job.branch}", cwd=remote) == (
        agent.checkpoint.commit_sha
    )


async def test_someone_elses_push_is_never_overwritten(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    remote: Path,
    tmp_path: Path,
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    theirs = push_commit(remote, prepared.job.branch, "theirs.txt", "theirs\n", tmp_path)
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs.commit_and_push, push(prepared, agent.checkpoint))
    assert caught.value.type == "PushRejected" and caught.value.non_retryable
    assert git("rev-parse", f"refs/heads/{prepared.job.branch}", cwd=remote) == theirs


async def test_a_follow_up_lands_on_top_of_the_earlier_work(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    prepared: Prepared,
    remote: Path,
    convex_client: ConvexClient,
) -> None:
    first = await activity_env.run(jobs.run_agent, prepared.agent("Add a greeting"))
    pushed = await activity_env.run(jobs.commit_and_push, push(prepared, first.checkpoint))
    assert pushed.commit_sha is not None
    order, run = await convex_run(convex_client, str(remote))
    follow = JobSpec(
        **{
            **prepared.job.model_dump(),
            "work_order_id": order,
            "prompt": "Also say goodbye",
            "parent": ParentRef(
                work_order_id=prepared.order_id,
                branch=prepared.job.branch,
                commit_sha=pushed.commit_sha,
            ),
        }
    )
    ws = await activity_env.run(jobs.prepare_workspace, PrepareWorkspaceInput(job=follow))
    assert ws.state.base_sha == pushed.commit_sha == ws.remote_branch_sha
    later = Prepared(order, run, follow, ws)
    second = await activity_env.run(jobs.run_agent, later.agent("Also say goodbye"))
    result = await activity_env.run(jobs.commit_and_push, push(later, second.checkpoint))
    assert result.pushed
    branch = prepared.job.branch
    log = git("log", "--format=%H %s", f"main..{branch}", cwd=remote).splitlines()
    assert [line.split()[0] for line in log] == [second.checkpoint.commit_sha, pushed.commit_sha]
    assert git("show", f"{branch}:NOTES.md", cwd=remote).splitlines() == [
        "- Add a greeting",
        "- Also say goodbye",
    ]
