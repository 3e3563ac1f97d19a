"""Workspaces from a per-repository cache.

Each worker keeps one bare mirror per repository, fetched incrementally, and makes workspaces
from it cheaply (clones that borrow its objects), with the cache bounded in size and safe under
concurrent jobs of the same repository, in one process or several.

Layout under ``root`` (``<key>`` is a hash of the repository URL with credentials removed,
:func:`cache_key`)::

    locks/<key>.lock          flock target of <key>; never deleted (renaming <key>/ is safe)
    <key>/mirror.git/         the bare mirror: refs/heads/* of the remote, nothing else
    <key>/repo                the redacted URL (for people reading the directory)
    <key>/used                touched on every use: its mtime orders eviction (LRU)
    <key>/fetched             mtime: when the last successful fetch started
    <key>/borrowers/<name>    one borrow grant per workspace using the mirror's objects
    .trash/                   evicted mirrors being deleted

The mirror
----------

First use: ``git init --bare --template=`` (no sample hooks) in a temporary directory,
``git fetch`` of ``+refs/heads/*:refs/heads/*`` from the repository, then a rename into place,
so a killed clone never leaves a half-made mirror. Later uses: the same fetch (``--prune``),
which only transfers what is new; a job that waited for the lock while another job's fetch
ran skips its own (that fetch started after it asked, so it brought everything this one
would). The URL (which may carry a token) is given on the command line only; the mirror's
config holds no remote. No tags, no ``refs/pull/*``. Every fetch keeps what it
receives as a pack (``fetch.unpackLimit=1``); once there are more than ``max_packs`` packs,
``git repack -d --geometric=2`` rolls the small ones together. Nothing is ever pruned from a
mirror: a workspace may still borrow an object whose branch was deleted upstream, and
geometric repacking keeps every object of the packs it combines.

Workspaces: a clone that borrows the mirror's objects
-----------------------------------------------------

A workspace is ``git init`` + ``objects/info/alternates`` naming the mirror's ``objects``
directory + ``git fetch <mirror> +refs/heads/*:refs/remotes/origin/*`` (which copies no object:
they are all reachable through the alternate) + ``git checkout --force -B <branch>
<start_sha>`` (parallel: ``checkout.workers=0``, one worker per core) + ``git clean -ffdx``.
``remote.origin.url`` is the redacted URL, as :func:`activities.workspace.prepare_workspace`
records it. Objects are never copied, so making a workspace costs the checkout of its files,
not the repository's history.

Why not ``git worktree add`` on the mirror: a worktree shares the mirror's refs, config,
hooks and object store and writes its index and new objects into the mirror, so the agent
(which writes to the workspace's git directory) would write into the mirror every other job
uses; and its ``.git`` is a gitfile with a ``commondir``, which :mod:`activities.gitsafe`
refuses on purpose. A borrowing clone has a ``.git`` directory of its own (refs, config, index,
new objects); git only ever *reads* an alternate object directory.

What the agent can and cannot do:

- It can write anything in the workspace's ``.git``: config, hooks, refs, its own objects,
  the alternates file. None of it is read by any git command run in the mirror (they run with
  ``GIT_DIR`` = the mirror and never look at a workspace), and the worker's own git in the
  workspace is hardened by :mod:`activities.gitsafe` as before.
- It cannot write the mirror: in the sandbox (:mod:`activities.sandbox`) the data directory is
  hidden and only the workspace is writable. The agent's own git needs to *read* the mirror's
  objects, so the sandbox must bind :attr:`CachedWorkspace.objects_dir` read-only at the same
  path (after hiding the data directory). With ``JANGAR_SANDBOX=off`` the agent runs as the
  worker and nothing here (or anywhere) protects the mirror.
- It cannot borrow another repository's objects: :mod:`activities.gitsafe` keeps an
  alternates line only when the repository cache wrote a *borrow grant* for this very
  workspace next to that mirror (``<key>/borrowers/<name>``, outside the workspace, see
  :func:`activities.gitsafe.borrow_grant`). Any other line is removed before each worker git
  command, as any alternates file was before this module existed.

Locking
-------

One lock file per repository, ``flock``ed: exclusive to create or fetch the mirror and to
evict it, shared to make a workspace from it (to read its refs and write the borrow grant).
``flock`` works across processes and, since every acquisition opens its own file description,
between tasks of one process too. Locks are taken with ``LOCK_NB`` in a retry loop with
``asyncio.sleep`` between tries (never blocking the event loop; cancellable; heartbeating),
failing with the retryable ``RepoCacheBusy`` after ``lock_timeout`` seconds.

Eviction
--------

After every mirror update, :meth:`RepoCache.evict` keeps the mirrors' total size (disk blocks)
under ``max_bytes`` by deleting the least recently used mirrors that are not in use. In use
means: its lock is held (a job is fetching it or making a workspace from it: the non-blocking
exclusive lock fails) or a live workspace borrows its objects (a grant whose workspace still
exists with an alternates file naming this mirror; a grant whose workspace is gone is stale
and removed). A mirror in use is never evicted, even when that leaves the cache over its
bound (logged as ``repo_cache_over_bound``). A deleted mirror is renamed into ``.trash``
under the lock, then removed. :meth:`RepoCache.remove_workspace` deletes a workspace and its
grant at once; a workspace deleted any other way (``Workspaces.sweep`` removes whole job
directories) leaves a stale grant, which the next eviction drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from activities.gitcli import INVALID_BRANCH
from activities.gitrunner import GitRunner
from activities.gitsafe import BORROWERS_DIR, borrow_grant, borrower_name, write_atomically
from activities.models import SHA_RE, check_branch_name
from activities.repo_url import classify_repo, redact_url

START_COMMIT_NOT_FOUND = "StartCommitNotFound"  # non-retryable
REPO_CACHE_BUSY = "RepoCacheBusy"  # retryable: a lock was not free within lock_timeout

MIRROR_DIR = "mirror.git"
MIRROR_REFSPEC = "+refs/heads/*:refs/heads/*"
WORKSPACE_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
TRASH_DIR = ".trash"
LOCKS_DIR = "locks"

_KEY = re.compile(r"^[0-9a-f]{32}$")

log = structlog.stdlib.get_logger(__name__)


def cache_key(repo: str) -> str:
    """The stable name of ``repo``'s cache entry: a hash of its redacted URL."""
    return hashlib.sha256(redact_url(repo).encode("utf-8")).hexdigest()[:32]


class CachedWorkspace(BaseModel):
    """A workspace made by :meth:`RepoCache.make_workspace`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Absolute path of the workspace.")
    repo: str = Field(description="The repository, credentials removed.")
    branch: str = Field(description="The branch checked out, at start_sha.")
    start_sha: str = Field(description="The commit checked out.")
    mirror: str = Field(description="The bare mirror whose objects the workspace borrows.")
    objects_dir: str = Field(
        description="The mirror's objects directory: the sandbox must expose it read-only."
    )
    reused: bool = Field(description="True when an earlier workspace at path was refreshed.")


@dataclass(frozen=True)
class EvictionReport:
    """What :meth:`RepoCache.evict` did."""

    total_bytes: int  # the mirrors' size afterwards
    max_bytes: int
    evicted: tuple[str, ...] = ()  # redacted URLs of the mirrors deleted
    in_use: tuple[str, ...] = ()  # mirrors that would have gone but were in use

    @property
    def over_bound(self) -> bool:
        return self.total_bytes > self.max_bytes


def _disk_bytes(path: Path) -> int:
    """Disk usage of a tree (blocks, not apparent sizes); files vanishing meanwhile count 0."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _remove(path: Path) -> None:
    """Delete whatever is at ``path`` (a symlink itself, never what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _absolute(path: Path) -> Path:
    """``path`` made absolute (not resolved: a symlink at the end stays one)."""
    return Path(os.path.abspath(path))


def _is_mirror(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _alternates_lines(workspace: Path) -> list[str] | None:
    """The lines of a workspace's alternates file (None: no regular file there)."""
    alternates = workspace / ".git" / "objects" / "info" / "alternates"
    try:
        if not stat.S_ISREG(alternates.lstat().st_mode):
            return None
        return alternates.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return None


class RepoCache:
    """One bare mirror per repository under ``root``; workspaces that borrow its objects.

    ``max_bytes`` bounds the mirrors' total disk usage (see the module docstring for what may
    exceed it); ``git`` runs every git command (:func:`activities.gitrunner.git_runner` in the
    worker). ``lock_timeout``: how long to wait for another job's fetch of the same
    repository. ``max_packs``: packs a mirror may collect before they are combined.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        git: GitRunner,
        lock_timeout: float = 3600.0,
        max_packs: int = 16,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.expanduser().resolve()
        self.max_bytes = max_bytes
        self._git = git
        self._lock_timeout = lock_timeout
        self._max_packs = max_packs

    # --- paths ------------------------------------------------------------------------------

    def mirror_path(self, repo: str) -> Path:
        """Where ``repo``'s mirror is (or would be)."""
        return self.root / cache_key(repo) / MIRROR_DIR

    def _entries(self) -> list[Path]:
        try:
            children = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        return [p for p in children if _KEY.match(p.name) and p.is_dir() and not p.is_symlink()]

    # --- locks ------------------------------------------------------------------------------

    def _open_lock(self, key: str) -> int:
        locks = self.root / LOCKS_DIR
        locks.mkdir(exist_ok=True)
        return os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _try_lock(self, key: str, *, exclusive: bool) -> int | None:
        """An fd holding the lock, or None when someone else holds it (never blocks)."""
        fd = self._open_lock(key)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.asynccontextmanager
    async def _locked(
        self,
        key: str,
        *,
        exclusive: bool,
        what: str,
        heartbeat: Callable[[], None] | None = None,
    ) -> AsyncIterator[None]:
        deadline = time.monotonic() + self._lock_timeout
        delay = 0.005
        while True:
            fd = self._try_lock(key, exclusive=exclusive)
            if fd is not None:
                break
            if time.monotonic() >= deadline:
                raise ApplicationError(
                    f"{what}: the repository cache's lock was busy for {self._lock_timeout:g} s"
                    " (another job is fetching the same repository); will retry",
                    type=REPO_CACHE_BUSY,
                )
            if heartbeat is not None:
                heartbeat()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            os.close(fd)  # releases the flock

    @contextlib.asynccontextmanager
    async def hold(
        self, repo: str, *, heartbeat: Callable[[], None] | None = None
    ) -> AsyncIterator[Path]:
        """Hold ``repo``'s mirror (shared lock): it is not evicted or fetched meanwhile.

        Yields where the mirror is; it exists only if :meth:`mirror` made it before."""
        key = cache_key(repo)
        async with self._locked(key, exclusive=False, what="hold", heartbeat=heartbeat):
            yield self.root / key / MIRROR_DIR

    # --- the mirror -------------------------------------------------------------------------

    async def mirror(
        self, repo: str, *, fetch: bool = True, heartbeat: Callable[[], None] | None = None
    ) -> Path:
        """``repo``'s bare mirror, cloned on first use, else fetched (``fetch=False``: as is).

        Raises the typed errors of :func:`activities.gitcli.run_git` (RepositoryNotFound,
        RepositoryAccessDenied, GitNetworkError...) and RepoCacheBusy.
        """
        classify_repo(repo)
        key = cache_key(repo)
        shown = redact_url(repo)
        what = f"mirror of {shown}"
        asked = time.time()
        async with self._locked(key, exclusive=True, what=what, heartbeat=heartbeat):
            path = await self._update_mirror(
                repo, key, fetch=fetch, heartbeat=heartbeat, asked=asked
            )
        await self.evict(keep=(key,))
        return path

    async def _update_mirror(
        self,
        repo: str,
        key: str,
        *,
        fetch: bool,
        heartbeat: Callable[[], None] | None,
        asked: float,
    ) -> Path:
        """Create or fetch the mirror; the caller holds the exclusive lock.

        A fetch that started after ``asked`` (another job's, while this one waited for the
        lock) already brought what this one would: it is not repeated.
        """
        entry = self.root / key
        mirror = entry / MIRROR_DIR
        shown = redact_url(repo)
        await asyncio.to_thread(self._prepare_entry, entry, shown)
        fetched = entry / "fetched"
        with contextlib.suppress(OSError):
            if _is_mirror(mirror) and fetched.stat().st_mtime >= asked:
                fetch = False
        started = time.time()
        if not _is_mirror(mirror):
            await asyncio.to_thread(_remove, mirror)  # a broken one: made again
            scratch = entry / f"mirror.tmp-{secrets.token_hex(6)}"
            await self._git(["init", "--bare", "--quiet", "--template=", str(scratch)], cwd=entry)
            try:
                await self._fetch(scratch, repo, heartbeat)
                os.rename(scratch, mirror)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)  # else: the next update removes it
                raise
            _touch(fetched, started)
            log.info("mirror_cloned", repo=shown, seconds=round(time.time() - started, 3))
        elif fetch:
            await self._fetch(mirror, repo, heartbeat)
            _touch(fetched, started)
            await self._compact(mirror)
            log.info("mirror_fetched", repo=shown, seconds=round(time.time() - started, 3))
        (entry / "used").touch()
        return mirror

    @staticmethod
    def _prepare_entry(entry: Path, shown: str) -> None:
        entry.mkdir(exist_ok=True)
        for leftover in entry.glob("mirror.tmp-*"):  # a clone killed midway (we hold the lock)
            _remove(leftover)
        if not (entry / "repo").is_file():
            write_atomically(entry / "repo", shown + "\n")

    async def _fetch(self, mirror: Path, repo: str, heartbeat: Callable[[], None] | None) -> None:
        await self._git(
            [
                *("-c", "fetch.unpackLimit=1"),
                *("fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head"),
                *("--", repo, MIRROR_REFSPEC),
            ],
            cwd=mirror,
            remote=repo,
            heartbeat=heartbeat,
            what=f"git fetch {redact_url(repo)} (repository cache)",
            extra_env={"GIT_DIR": str(mirror)},
        )

    async def _compact(self, mirror: Path) -> None:
        packs = list((mirror / "objects" / "pack").glob("*.pack"))
        if len(packs) <= self._max_packs:
            return
        await self._git(
            ["repack", "-d", "-q", "--geometric=2"],
            cwd=mirror,
            what="git repack (repository cache)",
            extra_env={"GIT_DIR": str(mirror)},
        )

    async def resolve(self, repo: str, ref: str) -> str | None:
        """The commit ``ref`` (e.g. ``refs/heads/main``) names in the mirror, or None."""
        key = cache_key(repo)
        async with self._locked(key, exclusive=False, what=f"resolve {ref}"):
            mirror = self.root / key / MIRROR_DIR
            if not _is_mirror(mirror):
                return None
            return await self._commit(mirror, ref)

    async def branches(self, repo: str) -> list[str]:
        """The mirror's branch names (the remote's, as of the last fetch), sorted."""
        key = cache_key(repo)
        async with self._locked(key, exclusive=False, what="list branches"):
            mirror = self.root / key / MIRROR_DIR
            if not _is_mirror(mirror):
                return []
            out = await self._git(
                ["for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/"],
                cwd=mirror,
                extra_env={"GIT_DIR": str(mirror)},
            )
            return sorted(name for name in out.stdout.splitlines() if name)

    async def _commit(self, mirror: Path, ref: str) -> str | None:
        out = await self._git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
            cwd=mirror,
            check=False,
            extra_env={"GIT_DIR": str(mirror)},
        )
        sha = out.stdout.strip()
        return sha if out.exit_code == 0 and SHA_RE.match(sha) else None

    # --- workspaces -------------------------------------------------------------------------

    async def make_workspace(
        self,
        repo: str,
        path: Path,
        *,
        start_sha: str,
        branch: str,
        heartbeat: Callable[[], None] | None = None,
    ) -> CachedWorkspace:
        """A clean workspace at ``path`` with ``start_sha`` checked out on ``branch``.

        Whatever is at ``path`` is replaced, unless it is a workspace this cache made from the
        same repository: then it is refreshed (refs, branch reset, every untracked and ignored
        file removed) and ``reused`` is True. ``start_sha`` must be in the mirror; when it is
        not, the mirror is fetched once (a commit pushed since the last fetch), and if it is
        still missing: ``StartCommitNotFound`` (non-retryable). ``InvalidBranch`` for a
        branch name git refuses. One call per path at a time (a work order's workspace).
        """
        classify_repo(repo)
        if not SHA_RE.match(start_sha):
            raise ValueError("start_sha must be a full commit sha (40 or 64 lower-case hex)")
        try:
            check_branch_name(branch)
        except ValueError as exc:
            raise ApplicationError(
                f"work branch: {exc}", type=INVALID_BRANCH, non_retryable=True
            ) from exc
        key = cache_key(repo)
        path = _absolute(path)
        shown = redact_url(repo)
        for attempt in range(2):
            async with self._locked(
                key, exclusive=False, what=f"workspace of {shown}", heartbeat=heartbeat
            ):
                mirror = self.root / key / MIRROR_DIR
                if _is_mirror(mirror) and await self._commit(mirror, start_sha) == start_sha:
                    return await self._build(repo, mirror, path, start_sha, branch)
            if attempt == 0:
                await self.mirror(repo, fetch=True, heartbeat=heartbeat)
        raise ApplicationError(
            f"commit {start_sha} is not in {shown}, even after a fetch (no branch of the"
            " repository contains it); start from a branch that exists",
            type=START_COMMIT_NOT_FOUND,
            non_retryable=True,
        )

    async def _build(
        self, repo: str, mirror: Path, path: Path, start_sha: str, branch: str
    ) -> CachedWorkspace:
        """Make or refresh the workspace; the caller holds the shared lock."""
        started = time.monotonic()
        shown = redact_url(repo)
        objects = mirror / "objects"
        await asyncio.to_thread(self._grant, objects, path)
        reused = await self._reusable(path, objects, shown)
        if reused:
            (path / ".git" / "index.lock").unlink(missing_ok=True)  # left by a killed git
        else:
            await asyncio.to_thread(_make_empty, path)
            await self._git(["init", "--quiet"], cwd=path)
            alternates = path / ".git" / "objects" / "info" / "alternates"
            await asyncio.to_thread(write_atomically, alternates, f"{objects}\n")
            await self._git(["remote", "add", "origin", shown], cwd=path)
        await self._git(
            [
                *("fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head"),
                *("--", str(mirror), WORKSPACE_REFSPEC),
            ],
            cwd=path,
            what="git fetch (workspace refs from the repository cache)",
        )
        await self._git(
            ["-c", "checkout.workers=0", "checkout", "--quiet", "--force", "-B", branch, start_sha],
            cwd=path,
        )
        await self._git(["clean", "-ffdxq"], cwd=path)
        (mirror.parent / "used").touch()
        log.info(
            "workspace_from_cache",
            path=str(path),
            repo=shown,
            branch=branch,
            start_sha=start_sha,
            reused=reused,
            seconds=round(time.monotonic() - started, 3),
        )
        return CachedWorkspace(
            path=str(path),
            repo=shown,
            branch=branch,
            start_sha=start_sha,
            mirror=str(mirror),
            objects_dir=str(objects),
            reused=reused,
        )

    def _grant(self, objects: Path, path: Path) -> None:
        """Write ``path``'s borrow grant for ``objects`` (and drop its grants elsewhere)."""
        if not path.is_dir() or path.is_symlink():
            _make_empty(path)
        grant = borrow_grant(objects, path)
        for entry in self._entries():
            other = entry / BORROWERS_DIR / grant.name
            if other != grant:
                other.unlink(missing_ok=True)
        grant.parent.mkdir(exist_ok=True)
        write_atomically(grant, os.path.realpath(path) + "\n")

    async def _reusable(self, path: Path, objects: Path, shown: str) -> bool:
        git_dir = path / ".git"
        if not git_dir.is_dir() or git_dir.is_symlink():
            return False
        # Through run_git: gitsafe first reduces the config and the alternates to what the
        # worker wrote and granted; then both must be what this cache makes.
        origin = await self._git(["config", "--get", "remote.origin.url"], cwd=path, check=False)
        if origin.exit_code != 0 or origin.stdout.strip() != shown:
            return False
        return _alternates_lines(path) == [str(objects)]

    async def remove_workspace(self, path: Path) -> None:
        """Delete a workspace and its borrow grant (which unpins its mirror)."""
        await asyncio.to_thread(self._remove_workspace, _absolute(path))

    def _remove_workspace(self, path: Path) -> None:
        name = borrower_name(path)
        _remove(path)
        for entry in self._entries():
            (entry / BORROWERS_DIR / name).unlink(missing_ok=True)

    # --- size and eviction ------------------------------------------------------------------

    async def size(self) -> int:
        """The mirrors' total disk usage in bytes."""
        return await asyncio.to_thread(lambda: sum(_disk_bytes(e) for e in self._entries()))

    async def evict(self, *, keep: Iterable[str] = ()) -> EvictionReport:
        """Delete least recently used mirrors not in use until the cache fits ``max_bytes``.

        ``keep``: cache keys never to evict now (the mirror the caller is about to use).
        Runs in a thread; takes locks without blocking.
        """
        return await asyncio.to_thread(self._evict, frozenset(keep))

    def _live_borrowers(self, entry: Path) -> int:
        """Workspaces still borrowing ``entry``'s objects; stale grants are removed."""
        objects = str(entry / MIRROR_DIR / "objects")
        live = 0
        grants = entry / BORROWERS_DIR
        for grant in grants.iterdir() if grants.is_dir() else ():
            try:
                workspace = Path(grant.read_text(encoding="utf-8").strip("\n"))
            except OSError:
                continue
            lines = _alternates_lines(workspace)
            if lines is not None and objects in lines:
                live += 1
            else:
                grant.unlink(missing_ok=True)
        return live

    def _evict(self, keep: frozenset[str]) -> EvictionReport:
        trash = self.root / TRASH_DIR
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        entries = self._entries()
        sizes = {entry: _disk_bytes(entry) for entry in entries}
        total = sum(sizes.values())
        if total <= self.max_bytes:
            return EvictionReport(total, self.max_bytes)

        def last_used(entry: Path) -> float:
            for name in ("used", ""):
                with contextlib.suppress(OSError):
                    return (entry / name).stat().st_mtime
            return 0.0

        evicted: list[str] = []
        in_use: list[str] = []
        for entry in sorted(entries, key=last_used):
            if total <= self.max_bytes:
                break
            shown = _read_repo(entry)
            if entry.name in keep:
                in_use.append(shown)
                continue
            fd = self._try_lock(entry.name, exclusive=True)
            if fd is None:
                in_use.append(shown)
                continue
            try:
                if self._live_borrowers(entry):
                    in_use.append(shown)
                    continue
                trash.mkdir(exist_ok=True)
                doomed = trash / f"{entry.name}-{secrets.token_hex(4)}"
                os.rename(entry, doomed)
            finally:
                os.close(fd)
            shutil.rmtree(doomed, ignore_errors=True)
            total -= sizes[entry]
            evicted.append(shown)
            log.info("mirror_evicted", repo=shown, bytes=sizes[entry])
        report = EvictionReport(total, self.max_bytes, tuple(evicted), tuple(in_use))
        if report.over_bound:
            log.warning(
                "repo_cache_over_bound",
                total_bytes=total,
                max_bytes=self.max_bytes,
                in_use=list(in_use),
            )
        return report


def _touch(path: Path, when: float) -> None:
    """``path`` exists with mtime ``when``."""
    path.touch()
    os.utime(path, (when, when))


def _read_repo(entry: Path) -> str:
    try:
        return (entry / "repo").read_text(encoding="utf-8").strip() or entry.name
    except OSError:
        return entry.name


def _make_empty(path: Path) -> None:
    """An empty directory at ``path``; whatever was there goes."""
    if os.path.lexists(path):
        _remove(path)
    path.mkdir(parents=True)
