"""``commit_and_push``: push the job's checkpoint commit to its work branch.

The commit itself was made when the agent finished (``Workspaces.checkpoint``: one commit on
top of where the job started, with the job's message, deterministic for a given tree), so this
step only pushes, from whichever worker runs it, and a retry converges on one push:

1. Nothing changed (the checkpoint is where the job started): ``changed=False`` with a reason,
   nothing pushed: a clear outcome, not an error.
2. When the remote branch already points at the commit (an earlier attempt pushed it), the
   push is skipped (``pushed=False``).
3. Otherwise the commit is pushed to ``refs/heads/<branch>`` with ``--force-with-lease``
   expecting what ``prepare_workspace`` saw there (absent for a new branch; the earlier
   order's head for a follow-up, which the commit sits on top of, so that push is a
   fast-forward): a retry may replace our own earlier push, never someone else's work.

Errors: ``PushRejected`` (non-retryable: the remote branch moved under us),
RepositoryAccessDenied / RepositoryNotFound (non-retryable), GitNetworkError / GitTimeout /
GitCommandFailed (retryable).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.gitcli import classify_git_failure, run_git
from activities.models import CommitAndPushInput, CommitResult
from activities.repo_url import redact_text, redact_url
from activities.workspace import Workspaces

PUSH_REJECTED = "PushRejected"  # non-retryable

log = structlog.stdlib.get_logger(__name__)


async def commit_and_push(
    inp: CommitAndPushInput,
    *,
    config: JobConfig,
    workspaces: Workspaces,
    heartbeat: Callable[[], None] | None = None,
) -> CommitResult:
    """Push the checkpoint; see the module docstring."""
    state = inp.state
    if not state.changed:
        return CommitResult(
            changed=False,
            reason="the agent made no changes",
            pushed=False,
            branch=state.branch,
            base_sha=state.base_sha,
            commit_sha=None,
        )
    ref = f"refs/heads/{state.branch}"
    shown = redact_url(state.repo)
    async with workspaces.hold(state, heartbeat=heartbeat) as ws:
        remote = await run_git(
            ["ls-remote", "--", state.repo, ref],
            cwd=ws,
            config=config,
            remote=state.repo,
            what=f"git ls-remote {shown}",
        )
        remote_sha = remote.stdout.split("\t", 1)[0].strip() if remote.stdout.strip() else ""
        if remote_sha == state.commit_sha:
            log.info("branch_already_pushed", branch=state.branch, commit_sha=state.commit_sha)
            return _pushed(inp, pushed=False)
        lease = inp.remote_branch_sha or ""
        pushed = await run_git(
            [
                *("push", "--quiet", "--no-verify", f"--force-with-lease={ref}:{lease}"),
                *("--", state.repo, f"{state.commit_sha}:{ref}"),
            ],
            cwd=ws,
            config=config,
            remote=state.repo,
            heartbeat=heartbeat,
            check=False,
        )
    if pushed.exit_code != 0:
        text = pushed.stderr.lower()
        if "stale info" in text or "[rejected]" in text or "non-fast-forward" in text:
            raise ApplicationError(
                f"push of {state.branch!r} to {shown} was rejected: the remote branch changed"
                " since the job started (someone else pushed to it). Use another branch or"
                f" delete the remote one. git said: "
                f"{redact_text(pushed.stderr.strip(), state.repo)[-800:]}",
                type=PUSH_REJECTED,
                non_retryable=True,
            )
        raise classify_git_failure(
            f"git push {shown}", pushed.stderr, state.repo, exit_code=pushed.exit_code
        )
    log.info("branch_pushed", branch=state.branch, commit_sha=state.commit_sha)
    return _pushed(inp, pushed=True)


def _pushed(inp: CommitAndPushInput, *, pushed: bool) -> CommitResult:
    return CommitResult(
        changed=True,
        pushed=pushed,
        branch=inp.state.branch,
        base_sha=inp.state.base_sha,
        commit_sha=inp.state.commit_sha,
    )
