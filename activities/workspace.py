"""The job's workspace, rebuilt exactly wherever a step runs: prepare, hold, checkpoint, sweep.

A job's steps may run on different workers (a worker is lost, scaled in, or simply busy), so
no step trusts a directory an earlier step left. Every workspace step names the commit it must
start from (``WorkspaceState``) and ``Workspaces.hold`` makes the local tree exactly that
commit, clean, before the step runs:

- on the worker that already has it: ``checkout --force`` + ``clean -ffdx`` (a tree an earlier,
  killed attempt left dirty is reset, never reused as is);
- elsewhere: a workspace made from this worker's repository cache at the job's start
  (``activities.repo_cache``: one bare mirror per repository, fetched incrementally; the
  workspace borrows its objects, so making one costs a checkout, not a clone), plus the job's
  own commit from the checkpoint bundle in Convex storage (``activities.checkpoint``).

``Workspaces.checkpoint`` turns what the agent left into ONE commit on the job's start (the
job's message and author, with a fixed time so the same tree always gives the same commit),
writes ``git bundle`` of ``start..commit`` and the diff, and uploads both to Convex storage:
from then on the work exists off this worker.

One step at a time per work order on a worker: ``hold`` takes an in-process lock and a file
lock (``fcntl.flock``) on the job's lock file, so a retried attempt on the same worker waits
for a stale one to be stopped instead of editing the same tree beside it.

Disk: workspaces and the job's private files (logs, prompt, per-step HOME) live under the data
directory; ``sweep`` removes those untouched for the retention period, never one held.

Credentials: the repository URL given is used on git's command line only, with the token as a
header (``activities.gitcli``); ``.git/config`` records the URL with credentials removed, so
the agent, which works in this directory, cannot read a token from it. The sandboxed agent and
checks see the mirror's objects read-only (``shared_objects``), so their own git works and
cannot write the cache every other job of the repository uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from temporalio.exceptions import ApplicationError

from activities import checkpoint as checkpoints
from activities.checkpoint import CHECKPOINT_INVALID
from activities.config import JobConfig
from activities.gitcli import INVALID_BRANCH, REPOSITORY_NOT_FOUND
from activities.gitrunner import git_runner
from activities.gitsafe import granted_alternate
from activities.models import JobSpec, StoredFile, Workspace, WorkspaceState
from activities.repo_cache import START_COMMIT_NOT_FOUND, RepoCache
from activities.repo_url import classify_repo, redact_url
from activities.storage import FileStore

__all__ = [
    "BASE_BRANCH_NOT_FOUND",
    "CHECKPOINT_INVALID",
    "INVALID_BRANCH",
    "PARENT_COMMIT_MISSING",
    "Checkpoint",
    "Workspaces",
]

BASE_BRANCH_NOT_FOUND = "BaseBranchNotFound"  # non-retryable
PARENT_COMMIT_MISSING = "ParentCommitMissing"  # non-retryable: the branch was rewritten

LEASE_FILE = ".jangar-lease"

log = structlog.stdlib.get_logger(__name__)

Heartbeat = Callable[..., None]


@dataclass(frozen=True)
class Checkpoint:
    """What ``Workspaces.checkpoint`` made: the new state and what changed since the start."""

    state: WorkspaceState
    diff: StoredFile | None
    files_changed: int
    insertions: int
    deletions: int


def _local_repo_path(repo: str) -> Path | None:
    kind = classify_repo(repo)
    if kind == "local":
        return Path(repo)
    if kind == "file":
        return Path(unquote(urlsplit(repo).path))
    return None


class Workspaces:
    """The job workspaces of one worker (see the module docstring)."""

    def __init__(self, config: JobConfig, *, files: FileStore) -> None:
        self._config = config
        self._files = files
        self._git_runner = git_runner(config)
        self.cache = RepoCache(
            config.repo_cache_root, max_bytes=config.repo_cache_max_bytes, git=self._git_runner
        )
        self.root = config.workspaces_root
        self.private_root = config.data_dir.expanduser().resolve() / "private"
        self._locks: dict[str, asyncio.Lock] = {}
        self.held: set[str] = set()

    # ----- places --------------------------------------------------------------------------
    def path_for(self, work_order_id: str) -> Path:
        return self.root / work_order_id

    def private_dir(self, work_order_id: str) -> Path:
        """The job's private files (prompt, logs, per-step HOME): never inside the workspace."""
        path = self.private_root / work_order_id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def shared_objects(self, ws: Path) -> tuple[Path, ...]:
        """The object directories ``ws`` borrows (its mirror's), which a sandboxed step must
        see read-only for its own git to work; only lines the cache granted count."""
        alternates = ws / ".git" / "objects" / "info" / "alternates"
        try:
            lines = alternates.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except OSError:
            return ()
        return tuple(Path(line) for line in lines if granted_alternate(line, ws))

    # ----- git helpers ---------------------------------------------------------------------
    async def _git(self, args: list[str], ws: Path, **kwargs: Any) -> str:
        out = await self._git_runner(args, cwd=ws, **kwargs)
        return out.stdout

    async def _rev(self, ws: Path, ref: str) -> str | None:
        out = await self._git_runner(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=ws,
            check=False,
        )
        sha = out.stdout.strip()
        return sha if out.exit_code == 0 and sha else None

    async def _default_branch(self, job: JobSpec) -> str:
        listing = await self._git(
            ["ls-remote", "--symref", "--", job.repo, "HEAD"],
            self.private_dir(job.work_order_id),
            remote=job.repo,
            what="git ls-remote (default branch)",
        )
        for line in listing.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
        branches = await self.cache.branches(job.repo)
        for candidate in ("main", "master"):
            if candidate in branches:
                return candidate
        raise ApplicationError(
            f"repository {redact_url(job.repo)} has no default branch (is it empty?); push a"
            " first commit or set the work order's base branch",
            type=BASE_BRANCH_NOT_FOUND,
            non_retryable=True,
        )

    async def _checkout_exact(self, ws: Path, branch: str, sha: str) -> None:
        await self._git(["checkout", "--quiet", "--force", "-B", branch, sha], ws)
        await self._git(["clean", "-ffdxq"], ws)

    async def _has(self, ws: Path, state: WorkspaceState) -> bool:
        """``ws`` is a workspace of the state's repository holding its commit."""
        if not (ws / ".git").is_dir():
            return False
        origin = await self._git_runner(
            ["config", "--get", "remote.origin.url"], cwd=ws, check=False
        )
        if origin.exit_code != 0 or origin.stdout.strip() != redact_url(state.repo):
            return False
        (ws / ".git" / "index.lock").unlink(missing_ok=True)  # left by a killed git
        return await self._rev(ws, state.commit_sha) == state.commit_sha

    # ----- prepare -------------------------------------------------------------------------
    async def prepare(self, job: JobSpec, *, heartbeat: Heartbeat | None = None) -> Workspace:
        """Resolve where the job starts and check it out: the base branch's tip, or for a
        follow-up the head its earlier order pushed."""
        path = self.path_for(job.work_order_id)
        shown = redact_url(job.repo)
        local = _local_repo_path(job.repo)
        if local is not None and not local.exists():
            raise ApplicationError(
                f"repository {shown} not found: no such path on this worker",
                type=REPOSITORY_NOT_FOUND,
                non_retryable=True,
            )
        async with self._lock(job.work_order_id):
            await self.cache.mirror(job.repo, fetch=True, heartbeat=heartbeat)
            base = job.base_branch or await self._default_branch(job)
            base_tip = await self.cache.resolve(job.repo, f"refs/heads/{base}")
            if base_tip is None:
                known = await self.cache.branches(job.repo)
                listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
                raise ApplicationError(
                    f"base branch {base!r} does not exist in {shown} (branches:"
                    f" {listed or 'none'}); fix the work order's base branch",
                    type=BASE_BRANCH_NOT_FOUND,
                    non_retryable=True,
                )
            if job.branch == base:
                raise ApplicationError(
                    f"the work branch {job.branch!r} is the base branch; choose another branch",
                    type=INVALID_BRANCH,
                    non_retryable=True,
                )
            remote_branch = await self.cache.resolve(job.repo, f"refs/heads/{job.branch}")
            start = base_tip
            if job.parent is not None:
                if remote_branch != job.parent.commit_sha:
                    raise ApplicationError(
                        f"the follow-up continues {job.branch!r} at {job.parent.commit_sha[:12]},"
                        f" but the branch is now at {(remote_branch or 'nothing')[:12]} (it was"
                        " rewritten or deleted); start the request afresh",
                        type=PARENT_COMMIT_MISSING,
                        non_retryable=True,
                    )
                start = job.parent.commit_sha
            made = await self.cache.make_workspace(
                job.repo, path, start_sha=start, branch=job.branch, heartbeat=heartbeat
            )
            self._touch(path)
        state = WorkspaceState(
            work_order_id=job.work_order_id,
            repo=job.repo,
            branch=job.branch,
            base_sha=start,
            commit_sha=start,
        )
        log.info(
            "workspace_prepared",
            path=str(path),
            repo=shown,
            branch=job.branch,
            base_branch=base,
            start=start,
            reused=made.reused,
            follow_up=job.parent is not None,
        )
        return Workspace(
            state=state,
            base_branch=base,
            remote_branch_sha=remote_branch,
            repo=shown,
            reused=made.reused,
        )

    # ----- hold ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lock(self, work_order_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(work_order_id, asyncio.Lock())
        async with lock:
            lock_path = self.private_dir(work_order_id) / "lock"
            handle = await asyncio.to_thread(lock_path.open, "a")
            try:
                await _flock(handle)
                self.held.add(work_order_id)
                try:
                    yield
                finally:
                    self.held.discard(work_order_id)
                    fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()

    @contextlib.asynccontextmanager
    async def hold(
        self, state: WorkspaceState, *, heartbeat: Heartbeat | None = None
    ) -> AsyncIterator[Path]:
        """The workspace at exactly ``state.commit_sha``, clean, held for this step."""
        path = self.path_for(state.work_order_id)
        async with self._lock(state.work_order_id):
            if not await self._has(path, state):
                await self._rebuild(path, state, heartbeat)
            await self._checkout_exact(path, state.branch, state.commit_sha)
            self._touch(path)
            yield path
            self._touch(path)

    async def _rebuild(
        self, path: Path, state: WorkspaceState, heartbeat: Heartbeat | None
    ) -> None:
        """The job's start from the repository cache, then its own commit from the bundle."""
        try:
            await self.cache.make_workspace(
                state.repo, path, start_sha=state.base_sha, branch=state.branch, heartbeat=heartbeat
            )
        except ApplicationError as exc:
            if exc.type != START_COMMIT_NOT_FOUND:
                raise
            raise ApplicationError(
                f"the job's start {state.base_sha[:12]} is no longer in"
                f" {redact_url(state.repo)} (the branch was rewritten)",
                type=PARENT_COMMIT_MISSING,
                non_retryable=True,
            ) from None
        if state.commit_sha == state.base_sha:
            return
        if state.bundle_storage_id is None:
            raise ApplicationError(
                f"commit {state.commit_sha[:12]} is not in the repository and the state names"
                " no checkpoint bundle",
                type=CHECKPOINT_INVALID,
                non_retryable=True,
            )
        bundle = self.private_dir(state.work_order_id) / "bundles" / f"{state.commit_sha}.bundle"
        await self._files.get(state.bundle_storage_id, bundle, heartbeat=heartbeat)
        await checkpoints.restore_checkpoint(
            path,
            bundle=bundle,
            commit_sha=state.commit_sha,
            branch=state.branch,
            git=self._git_runner,
        )
        log.info("workspace_restored", commit=state.commit_sha, bundle=state.bundle_storage_id)

    # ----- checkpoint ----------------------------------------------------------------------
    async def checkpoint(
        self,
        ws: Path,
        state: WorkspaceState,
        *,
        message: str,
        committed_at_ms: int,
        heartbeat: Heartbeat | None = None,
    ) -> Checkpoint:
        """Commit the tree as one commit on the job's start and put it in Convex storage."""
        private = self.private_dir(state.work_order_id)
        made = await checkpoints.create_checkpoint(
            ws,
            base_sha=state.base_sha,
            message=message,
            author=(self._config.git_author_name, self._config.git_author_email),
            at=datetime.fromtimestamp(committed_at_ms // 1000, tz=UTC),
            out=private / "bundles" / "checkpoint.bundle",
            git=self._git_runner,
        )
        if made.commit_sha == state.commit_sha:  # nothing new since the last checkpoint
            return Checkpoint(state=state, diff=None, files_changed=0, insertions=0, deletions=0)
        if not made.changed or made.bundle_path is None:  # the agent undid earlier work
            new_state = state.model_copy(
                update={"commit_sha": state.base_sha, "bundle_storage_id": None}
            )
            await self._checkout_exact(ws, state.branch, state.base_sha)
            return Checkpoint(
                state=new_state, diff=None, files_changed=0, insertions=0, deletions=0
            )
        commit = made.commit_sha
        await self._checkout_exact(ws, state.branch, commit)
        bundle = private / "bundles" / f"{commit}.bundle"
        os.replace(made.bundle_path, bundle)
        diff_path = private / f"diff-{commit[:12]}.patch"
        await self._git(["diff", "--binary", f"--output={diff_path}", state.base_sha, commit], ws)
        stored_bundle = await self._files.put(
            bundle, content_type="application/x-git-bundle", heartbeat=heartbeat
        )
        stored_diff = await self._files.put(
            diff_path, content_type="text/x-diff; charset=utf-8", heartbeat=heartbeat
        )
        new_state = state.model_copy(
            update={"commit_sha": commit, "bundle_storage_id": stored_bundle.storage_id}
        )
        log.info("workspace_checkpointed", commit=commit, files_changed=made.files_changed)
        return Checkpoint(
            state=new_state,
            diff=stored_diff,
            files_changed=made.files_changed,
            insertions=made.insertions,
            deletions=made.deletions,
        )

    # ----- disk ----------------------------------------------------------------------------
    @staticmethod
    def _touch(path: Path) -> None:
        with contextlib.suppress(OSError):
            (path / ".git" / LEASE_FILE).touch()

    def sweep(self, *, retention_seconds: float, now: float | None = None) -> list[str]:
        """Remove workspaces and private files untouched for ``retention_seconds``, never one
        a step holds; the work order ids removed. (A removed workspace's borrow grant is
        stale from then on, and the cache drops it: its mirror may be evicted again.)"""
        cutoff = (now if now is not None else time.time()) - retention_seconds
        removed: list[str] = []
        for root in (self.root, self.private_root):
            if not root.is_dir():
                continue
            for entry in root.iterdir():
                if entry.name in self.held or not entry.is_dir():
                    continue
                lease = entry / ".git" / LEASE_FILE
                marker = lease if lease.exists() else entry
                try:
                    touched = marker.stat().st_mtime
                except OSError:
                    continue
                if touched < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        return sorted(set(removed))

    def disk_bytes(self) -> int:
        """Bytes the workspaces, private files and repository cache take on disk."""
        total = 0
        for root in (self.root, self.private_root, self.cache.root):
            for dirpath, _dirs, names in os.walk(root):
                for name in names:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        return total


async def _flock(handle: Any) -> None:
    """Take an exclusive lock on ``handle`` without blocking the event loop."""
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(0.1)
