"""``commit_and_push``: commit what the agent changed, push the work branch, keep the diff.

Steps, each safe to repeat, so a retried activity converges on one commit and one push:

1. ``git add --all``; if anything is staged, commit it as ``JobConfig.git_author_name`` /
   ``git_author_email`` (author and committer) with the work order's message, hooks and
   signing off. A retry after a successful commit finds nothing staged and HEAD already past
   the base: no second commit (``committed=False``).
2. HEAD's tree equal to the base's: nothing changed. ``changed=False`` with a reason, nothing
   pushed, no diff: a clear outcome, not an error.
3. Push HEAD to ``refs/heads/<branch>`` on the repository, with ``--force-with-lease``
   expecting what ``prepare_workspace`` fetched (or "absent"): a retry may have recommitted,
   so the push may replace our own earlier push, but never someone else's. When the remote
   already has HEAD, the push is skipped (an earlier attempt pushed it).
4. Write ``git diff --binary base..HEAD`` to ``diff.patch`` in the artifact store and return
   its path, URL and stats (files changed, insertions, deletions).

Errors: ``PushRejected`` (non-retryable: the remote branch moved under us),
RepositoryAccessDenied / RepositoryNotFound (non-retryable), GitNetworkError / GitTimeout /
GitCommandFailed (retryable), WorkspaceMissing (non-retryable).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import structlog
from temporalio.exceptions import ApplicationError

from activities.artifact_store import ArtifactStore
from activities.config import JobConfig
from activities.gitcli import GIT_COMMAND_FAILED, classify_git_failure, run_git
from activities.models import CaptureDiffInput, CommitAndPushInput, CommitResult, DiffResult
from activities.repo_url import redact_text, redact_url
from activities.workspace import open_workspace, rev_parse

PUSH_REJECTED = "PushRejected"  # non-retryable
DIFF_NAME = "diff.patch"

log = structlog.stdlib.get_logger(__name__)
_STAT = re.compile(r"(\d+) (file|insertion|deletion)")


def parse_shortstat(text: str) -> tuple[int, int, int]:
    """(files changed, insertions, deletions) from ``git diff --shortstat``."""
    counts = {"file": 0, "insertion": 0, "deletion": 0}
    for number, kind in _STAT.findall(text):
        counts[kind] = int(number)
    return counts["file"], counts["insertion"], counts["deletion"]


async def _commit(ws: Path, inp: CommitAndPushInput, config: JobConfig) -> bool:
    """Stage everything and commit if anything is staged; True when a commit was made."""
    await run_git(["add", "--all"], cwd=ws, config=config)
    staged = await run_git(["diff", "--cached", "--quiet"], cwd=ws, config=config, check=False)
    if staged.exit_code == 0:
        return False
    if staged.exit_code != 1:
        raise ApplicationError(
            f"git diff --cached failed: {staged.stderr[-500:]}", type=GIT_COMMAND_FAILED
        )
    who = {
        "GIT_AUTHOR_NAME": config.git_author_name,
        "GIT_AUTHOR_EMAIL": config.git_author_email,
        "GIT_COMMITTER_NAME": config.git_author_name,
        "GIT_COMMITTER_EMAIL": config.git_author_email,
    }
    await run_git(
        ["commit", "--quiet", "--no-verify", "--no-edit", "-m", inp.message],
        cwd=ws,
        config=config,
        extra_env=who,
    )
    return True


async def _push(
    ws: Path,
    inp: CommitAndPushInput,
    head: str,
    config: JobConfig,
    heartbeat: Callable[[], None] | None,
) -> None:
    ref = f"refs/heads/{inp.branch}"
    shown = redact_url(inp.repo)
    remote = await run_git(
        ["ls-remote", "--", inp.repo, ref],
        cwd=ws,
        config=config,
        remote=inp.repo,
        what=f"git ls-remote {shown}",
    )
    remote_sha = remote.stdout.split("\t", 1)[0].strip() if remote.stdout.strip() else ""
    if remote_sha != head:
        expected = await rev_parse(ws, f"refs/remotes/origin/{inp.branch}", config) or ""
        pushed = await run_git(
            [
                *("push", "--quiet", "--no-verify", f"--force-with-lease={ref}:{expected}"),
                *("--", inp.repo, f"HEAD:{ref}"),
            ],
            cwd=ws,
            config=config,
            remote=inp.repo,
            heartbeat=heartbeat,
            check=False,
        )
        if pushed.exit_code != 0:
            text = pushed.stderr.lower()
            if "stale info" in text or "[rejected]" in text or "non-fast-forward" in text:
                raise ApplicationError(
                    f"push of {inp.branch!r} to {shown} was rejected: the remote branch changed"
                    " since the workspace was prepared (someone else pushed to it). Use another"
                    f" branch or delete the remote one. git said: "
                    f"{redact_text(pushed.stderr.strip(), inp.repo)[-800:]}",
                    type=PUSH_REJECTED,
                    non_retryable=True,
                )
            raise classify_git_failure(
                f"git push {shown}", pushed.stderr, inp.repo, exit_code=pushed.exit_code
            )
    # What the remote now has: the lease of a later push (a retry) expects exactly this.
    await run_git(["update-ref", f"refs/remotes/origin/{inp.branch}", head], cwd=ws, config=config)


async def write_diff(
    ws: Path,
    config: JobConfig,
    store: ArtifactStore,
    workflow_id: str,
    run_id: str,
    revisions: list[str],
) -> DiffResult:
    """Write ``git diff --binary <revisions>`` to the run's diff.patch, with its stats."""
    diff_path = store.path_for(workflow_id, run_id, DIFF_NAME)
    await run_git(["diff", "--binary", f"--output={diff_path}", *revisions], cwd=ws, config=config)
    stat = await run_git(["diff", "--shortstat", *revisions], cwd=ws, config=config)
    files, insertions, deletions = parse_shortstat(stat.stdout)
    return DiffResult(
        changed=files > 0,
        diff_path=str(diff_path),
        diff_url=store.url_for(diff_path),
        files_changed=files,
        insertions=insertions,
        deletions=deletions,
    )


async def capture_diff(
    inp: CaptureDiffInput,
    config: JobConfig,
    store: ArtifactStore,
    workflow_id: str,
    run_id: str,
) -> DiffResult:
    """The workspace's changes against the base, committed or not, without pushing anything.

    Used when a job fails before ``commit_and_push``: the diff of what the agent did is still
    recorded. Untracked files count (they are staged with ``git add --all``; nothing is
    committed).
    """
    ws = open_workspace(inp.workspace, config)
    await run_git(["add", "--all"], cwd=ws, config=config)
    return await write_diff(ws, config, store, workflow_id, run_id, ["--cached", inp.base_sha])


async def commit_and_push(
    inp: CommitAndPushInput,
    config: JobConfig,
    store: ArtifactStore,
    workflow_id: str,
    run_id: str,
    heartbeat: Callable[[], None] | None = None,
) -> CommitResult:
    """Commit, push and record the diff; see the module docstring."""
    ws = open_workspace(inp.workspace, config)
    committed = await _commit(ws, inp, config)
    head = await rev_parse(ws, "HEAD", config)
    assert head is not None
    same_tree = await run_git(
        ["diff", "--quiet", inp.base_sha, head], cwd=ws, config=config, check=False
    )
    if same_tree.exit_code == 0:
        reason = (
            "the agent made no changes"
            if head == inp.base_sha
            else "the agent's commits leave the files as they were on the base branch"
        )
        log.info("nothing_to_commit", branch=inp.branch, reason=reason)
        return CommitResult(
            changed=False,
            reason=reason,
            committed=False,
            pushed=False,
            branch=inp.branch,
            base_sha=inp.base_sha,
            commit_sha=None,
            diff_path=None,
            diff_url=None,
            files_changed=0,
            insertions=0,
            deletions=0,
        )
    if same_tree.exit_code != 1:
        raise ApplicationError(
            f"cannot compare base {inp.base_sha} with HEAD: {same_tree.stderr.strip()[-500:]}"
            " (was the workspace prepared from another base?)",
            type=GIT_COMMAND_FAILED,
        )
    await _push(ws, inp, head, config, heartbeat)
    diff = await write_diff(ws, config, store, workflow_id, run_id, [inp.base_sha, head])
    files, insertions, deletions = diff.files_changed, diff.insertions, diff.deletions
    log.info(
        "branch_pushed",
        branch=inp.branch,
        commit_sha=head,
        committed=committed,
        files_changed=files,
    )
    return CommitResult(
        changed=True,
        reason=None,
        committed=committed,
        pushed=True,
        branch=inp.branch,
        base_sha=inp.base_sha,
        commit_sha=head,
        diff_path=diff.diff_path,
        diff_url=diff.diff_url,
        files_changed=files,
        insertions=insertions,
        deletions=deletions,
    )
