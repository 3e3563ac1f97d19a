"""``prepare_workspace``: a clean checkout of the work branch, made from the base branch.

The workspace is ``<data_dir>/workspaces/<work order id>``, one per work order, so a retried
activity (or a retried workflow) finds and reuses it: fetch, then force the work branch back to
the base tip and remove every untracked file. A directory that is not a workspace of the same
repository (a half-made clone of another URL, a stray folder) is deleted and made again.

Credentials: the repository URL given is used on git's command line only (for fetch and
push, never while the agent runs); ``.git/config`` records the URL with credentials removed, so
the agent, which works in this directory, cannot read a token from it. Logs, errors and the
result carry the redacted URL only.

All of the job's activities must run where the workspace is: one worker, or workers sharing
``JANGAR_DATA_DIR``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import structlog
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.gitcli import REPOSITORY_NOT_FOUND, run_git
from activities.models import PrepareWorkspaceInput, Workspace, check_branch_name
from activities.repo_url import classify_repo, redact_url

BASE_BRANCH_NOT_FOUND = "BaseBranchNotFound"  # non-retryable
INVALID_BRANCH = "InvalidBranch"  # non-retryable
WORKSPACE_MISSING = "WorkspaceMissing"  # non-retryable

FETCH_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"

log = structlog.stdlib.get_logger(__name__)


def open_workspace(path: str, config: JobConfig) -> Path:
    """The workspace directory a later activity was given, checked to be one of ours."""
    root = config.workspaces_root
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root) or resolved == root:
        raise ApplicationError(
            f"workspace {path} is not under this worker's workspace directory {root}"
            " (JANGAR_DATA_DIR); pass the path prepare_workspace returned",
            type=WORKSPACE_MISSING,
            non_retryable=True,
        )
    if not (resolved / ".git").is_dir():
        raise ApplicationError(
            f"workspace {path} does not exist on this worker: prepare_workspace ran elsewhere"
            " or it was deleted. Run the job's activities on one worker or share JANGAR_DATA_DIR",
            type=WORKSPACE_MISSING,
            non_retryable=True,
        )
    return resolved


def _local_repo_path(repo: str) -> Path | None:
    kind = classify_repo(repo)
    if kind == "local":
        return Path(repo)
    if kind == "file":
        return Path(unquote(urlsplit(repo).path))
    return None


def _make_empty(path: Path) -> None:
    """An empty directory at ``path``; whatever was there (not a workspace of ours) goes."""
    if path.exists():
        log.info("workspace_discarded", path=str(path), reason="not a workspace of this repo")
        shutil.rmtree(path)
    path.mkdir(parents=True)


async def _open_or_init(path: Path, repo: str, config: JobConfig) -> bool:
    """Reuse ``path`` if it is a workspace of ``repo`` (True), else make it afresh (False)."""
    recorded = redact_url(repo)
    if (path / ".git").is_dir():
        origin = await run_git(
            ["config", "--get", "remote.origin.url"], cwd=path, config=config, check=False
        )
        if origin.exit_code == 0 and origin.stdout.strip() == recorded:
            (path / ".git" / "index.lock").unlink(missing_ok=True)  # left by a killed git
            return True
    _make_empty(path)
    await run_git(["init", "--quiet"], cwd=path, config=config)
    await run_git(["remote", "add", "origin", recorded], cwd=path, config=config)
    return False


async def _default_branch(path: Path, repo: str, config: JobConfig) -> str:
    """The branch the remote's HEAD points at."""
    listing = await run_git(
        ["ls-remote", "--symref", "--", repo, "HEAD"],
        cwd=path,
        config=config,
        remote=repo,
        what="git ls-remote (default branch)",
    )
    for line in listing.stdout.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    branches = await _remote_branches(path, config)
    for candidate in ("main", "master"):
        if candidate in branches:
            return candidate
    raise ApplicationError(
        f"repository {redact_url(repo)} has no default branch (is it empty?); push a first"
        " commit or set the work order's base branch",
        type=BASE_BRANCH_NOT_FOUND,
        non_retryable=True,
    )


async def _remote_branches(path: Path, config: JobConfig) -> list[str]:
    refs = await run_git(
        ["for-each-ref", "--format=%(refname:lstrip=3)", "refs/remotes/origin/"],
        cwd=path,
        config=config,
    )
    return [name for name in refs.stdout.splitlines() if name and name != "HEAD"]


async def rev_parse(path: Path, ref: str, config: JobConfig) -> str | None:
    """The commit sha ``ref`` names, or None."""
    out = await run_git(
        ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=path,
        config=config,
        check=False,
    )
    sha = out.stdout.strip()
    return sha if out.exit_code == 0 and sha else None


async def prepare_workspace(
    inp: PrepareWorkspaceInput,
    config: JobConfig,
    heartbeat: Callable[[], None] | None = None,
) -> Workspace:
    """Clone or refresh the repository and check out a clean work branch from the base.

    Raises ``ApplicationError`` types: RepositoryNotFound, RepositoryAccessDenied,
    BaseBranchNotFound, InvalidBranch (non-retryable); GitNetworkError, GitTimeout,
    GitCommandFailed (retryable).
    """
    shown = redact_url(inp.repo)
    local = _local_repo_path(inp.repo)
    if local is not None and not local.exists():
        raise ApplicationError(
            f"repository {shown} not found: no such path on this worker",
            type=REPOSITORY_NOT_FOUND,
            non_retryable=True,
        )
    path = config.workspaces_root / inp.work_order_id
    reused = await _open_or_init(path, inp.repo, config)
    await run_git(
        ["fetch", "--prune", "--no-tags", "--", inp.repo, FETCH_REFSPEC],
        cwd=path,
        config=config,
        remote=inp.repo,
        heartbeat=heartbeat,
        what=f"git fetch {shown}",
    )
    base = inp.base_branch or await _default_branch(path, inp.repo, config)
    base_sha = await rev_parse(path, f"refs/remotes/origin/{base}", config)
    if base_sha is None:
        known = await _remote_branches(path, config)
        listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
        raise ApplicationError(
            f"base branch {base!r} does not exist in {shown} (branches: {listed or 'none'});"
            " fix the work order's base branch",
            type=BASE_BRANCH_NOT_FOUND,
            non_retryable=True,
        )
    branch = inp.work_branch
    check_branch_name(branch)
    if branch == base:
        raise ApplicationError(
            f"the work branch {branch!r} is the base branch; choose another branch hint",
            type=INVALID_BRANCH,
            non_retryable=True,
        )
    await run_git(
        ["checkout", "--quiet", "--force", "-B", branch, base_sha], cwd=path, config=config
    )
    await run_git(["clean", "-ffdxq"], cwd=path, config=config)
    log.info(
        "workspace_prepared",
        path=str(path),
        repo=shown,
        branch=branch,
        base_branch=base,
        base_sha=base_sha,
        reused=reused,
    )
    return Workspace(
        path=str(path),
        branch=branch,
        base_branch=base,
        base_sha=base_sha,
        repo=shown,
        reused=reused,
    )
