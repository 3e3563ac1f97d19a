"""Durable workspace checkpoints: one commit and a git bundle, so a job can resume anywhere.

:func:`create_checkpoint` records the whole working tree of a workspace as ONE commit whose
parent is the job's base commit, and writes a bundle of ``base..commit`` (the objects the
base does not have, and one ref) to a file. :func:`restore_checkpoint` applies such a bundle
to a workspace of the same repository that has the base commit and its history (any full
clone: one made by :class:`activities.repo_cache.RepoCache` or by ``prepare_workspace``, on any
worker; the bundle leaves out every object the base's history has) and checks the commit out,
clean. The bundle file
is all that travels between workers.

What a checkpoint holds: exactly what ``git add --all`` stages on top of the base, i.e. what
:func:`activities.git_push.commit_and_push` would commit: tracked files as they are in the
working tree, deletions, new untracked files, file modes and symlinks. Left out: files the
repository's ``.gitignore`` rules ignore (build outputs, ``node_modules``, virtualenvs: large,
machine-specific and remade by the checks) unless the base tracks them; empty directories (git
records none); the contents of nested repositories (a nested repository with a commit is
recorded as a gitlink, whose commit the bundle does not carry). The agent's own commits, its
staging and its branch do not matter: the checkpoint's tree is the working tree, its parent is
``base_sha``, whatever HEAD is. Creating one resets the workspace's index to that tree (HEAD,
the branch and the files are not touched).

Determinism: the commit is made with ``git commit-tree`` from the tree, the base, the message,
the author (also the committer) and the time ``at`` (``GIT_AUTHOR_DATE`` and
``GIT_COMMITTER_DATE``), so creating a checkpoint again from the same files with the same
arguments (a retried activity) gives the same commit sha.

Every git command runs through the given :class:`activities.gitrunner.GitRunner`, i.e. the
hardened ``run_git``: no hook, filter, fsmonitor or other program planted in the workspace
runs.

Errors (``ApplicationError`` types): ``CheckpointInvalid`` (non-retryable: the bundle is
missing, unreadable, or does not hold exactly the expected commit), ``CheckpointBaseMissing``
(non-retryable: the workspace lacks the commit the bundle was made on; make the workspace
from the checkpoint's base first), and run_git's own types.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from datetime import datetime
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from activities.gitcli import GIT_COMMAND_FAILED, INVALID_BRANCH
from activities.gitrunner import GitRunner
from activities.models import SHA_RE, check_branch_name

CHECKPOINT_INVALID = "CheckpointInvalid"  # non-retryable
CHECKPOINT_BASE_MISSING = "CheckpointBaseMissing"  # non-retryable

CHECKPOINT_REF = "refs/jangar/checkpoint"

log = structlog.stdlib.get_logger(__name__)


def parse_shortstat(text: str) -> tuple[int, int, int]:
    """(files changed, insertions, deletions) from ``git diff --shortstat``."""
    counts = {"file": 0, "insertion": 0, "deletion": 0}
    words = text.replace(",", " ").split()
    for number, kind in itertools.pairwise(words):
        if number.isdigit():
            for key in counts:
                if kind.startswith(key):
                    counts[key] = int(number)
    return counts["file"], counts["insertion"], counts["deletion"]


def _absolute(path: Path) -> Path:
    """``path`` made absolute (not resolved: a symlink at the end stays one)."""
    return Path(os.path.abspath(path))


class Checkpoint(BaseModel):
    """A workspace checkpoint: ``commit_sha`` on top of ``base_sha``, bundled in a file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commit_sha: str = Field(description="The checkpoint commit; base_sha when unchanged.")
    base_sha: str = Field(description="The checkpoint commit's only parent.")
    changed: bool = Field(description="False: the working tree equals the base (no bundle).")
    bundle_path: str | None = Field(description="The bundle of base..commit; None: unchanged.")
    bundle_bytes: int = Field(ge=0, description="The bundle's size (0 when unchanged).")
    files_changed: int = Field(ge=0)
    insertions: int = Field(ge=0)
    deletions: int = Field(ge=0)


def _check_sha(value: str, what: str) -> None:
    if not SHA_RE.match(value):
        raise ValueError(f"{what} must be a full commit sha (40 or 64 lower-case hex)")


def _git_date(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware (e.g. datetime.now(UTC))")
    offset = at.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"@{int(at.timestamp())} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _remove_stale_locks(ws: Path, refs: tuple[str, ...]) -> None:
    """Lock files a killed git left behind (the activity owns the workspace: none is live)."""
    git_dir = ws / ".git"
    for name in ("index.lock", "HEAD.lock", *(f"{ref}.lock" for ref in refs)):
        (git_dir / name).unlink(missing_ok=True)


async def create_checkpoint(
    ws: Path,
    *,
    base_sha: str,
    message: str,
    author: tuple[str, str],
    at: datetime,
    out: Path,
    git: GitRunner,
) -> Checkpoint:
    """Commit the working tree of ``ws`` as one commit on ``base_sha``; bundle it to ``out``.

    ``author`` is ``(name, email)``, used as author and committer; ``at`` their time. The
    bundle is written to a scratch file next to ``out`` and renamed, so ``out`` is either
    absent or complete. When the tree equals the base's, nothing is written and
    ``changed=False`` (``commit_sha == base_sha``).
    """
    _check_sha(base_sha, "base_sha")
    name, email = author
    date = _git_date(at)
    await asyncio.to_thread(_remove_stale_locks, ws, (CHECKPOINT_REF,))
    # The index becomes the base's tree, then the working tree: the agent's staging, its
    # assume-unchanged/skip-worktree bits and its commits do not hide anything; the nested
    # repositories gitsafe sanitizes are the ones recorded at this point (the base's).
    await git(["read-tree", base_sha], cwd=ws)
    await git(["add", "--all"], cwd=ws)
    tree = (await git(["write-tree"], cwd=ws)).stdout.strip()
    base_tree = (await git(["rev-parse", f"{base_sha}^{{tree}}"], cwd=ws)).stdout.strip()
    if tree == base_tree:
        log.info("checkpoint_unchanged", workspace=str(ws), base_sha=base_sha)
        return Checkpoint(
            commit_sha=base_sha,
            base_sha=base_sha,
            changed=False,
            bundle_path=None,
            bundle_bytes=0,
            files_changed=0,
            insertions=0,
            deletions=0,
        )
    who = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_COMMITTER_DATE": date,
    }
    made = await git(["commit-tree", tree, "-p", base_sha, "-m", message], cwd=ws, extra_env=who)
    commit = made.stdout.strip()
    if not SHA_RE.match(commit):
        raise ApplicationError(f"git commit-tree printed {commit[:100]!r}", type=GIT_COMMAND_FAILED)
    await git(["update-ref", CHECKPOINT_REF, commit], cwd=ws)
    out = _absolute(out)
    await asyncio.to_thread(out.parent.mkdir, parents=True, exist_ok=True)
    scratch = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        await git(
            ["bundle", "create", "--quiet", str(scratch), CHECKPOINT_REF, f"^{base_sha}"],
            cwd=ws,
            what="git bundle create (checkpoint)",
        )
        os.replace(scratch, out)
    finally:
        scratch.unlink(missing_ok=True)
    stat = await git(["diff", "--shortstat", base_sha, commit], cwd=ws)
    files, insertions, deletions = parse_shortstat(stat.stdout)
    size = out.stat().st_size
    log.info(
        "checkpoint_created",
        workspace=str(ws),
        base_sha=base_sha,
        commit_sha=commit,
        bundle_bytes=size,
        files_changed=files,
    )
    return Checkpoint(
        commit_sha=commit,
        base_sha=base_sha,
        changed=True,
        bundle_path=str(out),
        bundle_bytes=size,
        files_changed=files,
        insertions=insertions,
        deletions=deletions,
    )


def _invalid(bundle: Path, why: str) -> ApplicationError:
    return ApplicationError(
        f"checkpoint bundle {bundle}: {why}", type=CHECKPOINT_INVALID, non_retryable=True
    )


async def restore_checkpoint(
    ws: Path, *, bundle: Path, commit_sha: str, branch: str, git: GitRunner
) -> str:
    """Apply ``bundle`` to ``ws`` and check out ``commit_sha`` on ``branch``, clean.

    ``ws`` must have the checkpoint's base commit. The bundle must hold exactly one ref, at
    ``commit_sha``; anything else is ``CheckpointInvalid``. Whatever the workspace held
    (changes, untracked and ignored files, stale lock files of a killed attempt, another
    branch) is replaced by exactly the checkpoint's tree; applying the same checkpoint again
    gives the same result. Returns the commit checked out.
    """
    _check_sha(commit_sha, "commit_sha")
    try:
        check_branch_name(branch)
    except ValueError as exc:
        raise ApplicationError(f"branch: {exc}", type=INVALID_BRANCH, non_retryable=True) from exc
    bundle = _absolute(bundle)
    if not bundle.is_file():
        raise _invalid(bundle, "no such file")
    await asyncio.to_thread(_remove_stale_locks, ws, (CHECKPOINT_REF, f"refs/heads/{branch}"))
    verified = await git(["bundle", "verify", str(bundle)], cwd=ws, check=False)
    if verified.exit_code != 0:
        text = verified.stderr.strip()[-600:]
        if "lacks these prerequisite commits" in verified.stderr:
            raise ApplicationError(
                f"the workspace {ws} lacks the commit checkpoint {bundle} was made on: make"
                f" the workspace from the checkpoint's base first ({text})",
                type=CHECKPOINT_BASE_MISSING,
                non_retryable=True,
            )
        raise _invalid(bundle, f"not a valid bundle ({text})")
    heads = await git(["bundle", "list-heads", str(bundle)], cwd=ws)
    listed = [line.split(" ", 1) for line in heads.stdout.splitlines() if line.strip()]
    if len(listed) != 1 or len(listed[0]) != 2 or listed[0][0] != commit_sha:
        shown = ", ".join(" ".join(item) for item in listed[:5]) or "none"
        raise _invalid(bundle, f"expected exactly one ref at {commit_sha}, found: {shown}")
    ref = listed[0][1].strip()
    # ``bundle verify`` reads the header only: a damaged pack shows here. The header and the
    # base were fine and the file is local, so a failure is the bundle's, not the network's.
    fetched = await git(
        [
            *("fetch", "--quiet", "--no-tags", "--no-write-fetch-head"),
            *("--", str(bundle), f"+{ref}:{CHECKPOINT_REF}"),
        ],
        cwd=ws,
        what="git fetch (checkpoint bundle)",
        check=False,
    )
    if fetched.exit_code != 0:
        raise _invalid(bundle, f"its objects cannot be read ({fetched.stderr.strip()[-600:]})")
    got = await git(
        ["rev-parse", "--verify", "--quiet", f"{CHECKPOINT_REF}^{{commit}}"], cwd=ws, check=False
    )
    if got.stdout.strip() != commit_sha:
        raise _invalid(bundle, f"it gave {got.stdout.strip() or 'no commit'}, not {commit_sha}")
    await git(["checkout", "--quiet", "--force", "-B", branch, commit_sha], cwd=ws)
    await git(["reset", "--quiet", "--hard", commit_sha], cwd=ws)  # also ends a merge/rebase
    await git(["clean", "-ffdxq"], cwd=ws)
    status = await git(["status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ws)
    if status.stdout.strip():
        raise ApplicationError(
            f"workspace {ws} is not clean after restoring {commit_sha}:"
            f" {status.stdout.strip()[:500]}",
            type=GIT_COMMAND_FAILED,
        )
    log.info("checkpoint_restored", workspace=str(ws), commit_sha=commit_sha, branch=branch)
    return commit_sha
