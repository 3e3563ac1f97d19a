"""The repository cache (activities/repo_cache.py) on real git repositories.

One bare mirror per repository, made once and fetched incrementally; workspaces that borrow
its objects; locking between tasks and between processes; eviction that keeps the bound and
never removes a mirror in use; and the agent's side: what it plants in a workspace reaches
neither the mirror nor other workspaces, and gitsafe keeps only the alternates line the cache
granted to that very workspace.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.gitcli import INVALID_BRANCH, GitOutput, run_git
from activities.gitrunner import git_runner
from activities.gitsafe import borrow_grant, sanitize_repository
from activities.process import child_env
from activities.repo_cache import (
    MIRROR_REFSPEC,
    START_COMMIT_NOT_FOUND,
    RepoCache,
    cache_key,
)
from activities.sandbox import SandboxConfig, bwrap_argv, sandbox_env, step_dirs
from tests.activities.conftest import exists, make_config, push_commit, read
from tests.git_repos import git, make_bare_repo
from tests.worker.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
HAVE_BWRAP = shutil.which("bwrap") is not None


class Recorder:
    """A GitRunner that runs the worker's git and remembers every command."""

    def __init__(self, config: JobConfig) -> None:
        self._inner = git_runner(config)
        self.calls: list[tuple[str, ...]] = []

    async def __call__(self, args: Sequence[str], *, cwd: Path, **kwargs: Any) -> GitOutput:
        self.calls.append(tuple(args))
        return await self._inner(args, cwd=cwd, **kwargs)

    def count(self, *prefix: str) -> int:
        return sum(1 for call in self.calls if call[: len(prefix)] == prefix)

    def mirror_fetches(self) -> int:
        """Fetches from the repository into a mirror (not workspace refs from a mirror)."""
        return sum(1 for call in self.calls if "fetch" in call and MIRROR_REFSPEC in call)


@dataclass
class Lab:
    base: Path
    remote: Path
    repo: str  # how work orders name it: a file:// URL
    main_sha: str
    config: JobConfig
    git: Recorder
    cache: RepoCache

    @property
    def workspaces(self) -> Path:
        return self.config.workspaces_root

    def other_cache(self, **kwargs: Any) -> RepoCache:
        """Another RepoCache object over the same directory (as another process has)."""
        values: dict[str, Any] = {"max_bytes": 10**12, "git": self.git}
        values.update(kwargs)
        return RepoCache(self.cache.root, **values)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    base = tmp_path.resolve()
    remote = make_bare_repo(base)
    config = make_config(base)
    recorder = Recorder(config)
    cache = RepoCache(base / "data" / "repo-cache", max_bytes=10**12, git=recorder)
    return Lab(
        base=base,
        remote=remote,
        repo=f"file://{remote}",
        main_sha=git("rev-parse", "main", cwd=remote),
        config=config,
        git=recorder,
        cache=cache,
    )


def objects_in(repo: Path) -> int:
    """Objects stored in a (bare) repository, loose and packed."""
    counts = dict(line.split(": ", 1) for line in git("count-objects", "-v", cwd=repo).splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def listing(root: Path) -> list[str]:
    """Every path under ``root``, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_clean_workspace(ws: Path, *, sha: str, branch: str, repo_shown: str) -> None:
    assert git("rev-parse", "HEAD", cwd=ws) == sha
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws) == branch
    assert git("status", "--porcelain", "--ignored", cwd=ws) == ""
    assert git("config", "--get", "remote.origin.url", cwd=ws) == repo_shown
    assert git("fsck", "--connectivity-only", "--no-dangling", cwd=ws) == ""


# --- the mirror ---------------------------------------------------------------------------


async def test_mirror_is_made_once_then_fetched_incrementally(lab: Lab) -> None:
    mirror = await lab.cache.mirror(lab.repo)
    assert mirror == lab.cache.root / cache_key(lab.repo) / "mirror.git"
    assert git("rev-parse", "refs/heads/main", cwd=mirror) == lab.main_sha
    assert lab.git.count("init", "--bare") == 1
    before = objects_in(mirror)
    inode = mirror.stat().st_ino
    assert "url" not in read(mirror / "config")  # the URL (maybe with a token) is never stored

    new_sha = push_commit(lab.remote, "main", "second.txt", "two\n", lab.base)
    assert await lab.cache.mirror(lab.repo) == mirror
    assert lab.git.count("init", "--bare") == 1  # not cloned again
    assert mirror.stat().st_ino == inode
    assert objects_in(mirror) - before == 3  # exactly the new commit, its tree and its blob
    assert git("rev-parse", "refs/heads/main", cwd=mirror) == new_sha

    assert await lab.cache.mirror(lab.repo, fetch=False) == mirror
    assert lab.git.mirror_fetches() == 2  # fetch=False: no third fetch
    assert await lab.cache.resolve(lab.repo, "refs/heads/main") == new_sha
    assert await lab.cache.resolve(lab.repo, "refs/heads/nope") is None


async def test_a_mirror_is_keyed_by_the_redacted_url(lab: Lab) -> None:
    with_token = "https://x-access-token:SECRET@github.example/acme/app.git"
    assert cache_key(with_token) == cache_key("https://github.example/acme/app.git")
    assert cache_key(with_token) != cache_key("https://github.example/acme/other.git")
    await lab.cache.mirror(lab.repo)
    assert read(lab.cache.root / cache_key(lab.repo) / "repo").strip() == lab.repo


async def test_a_new_commit_on_the_remote_is_seen_by_the_next_fetch(lab: Lab) -> None:
    first = await lab.cache.make_workspace(
        lab.repo, lab.workspaces / "wo-1", start_sha=lab.main_sha, branch="codex/wo-1"
    )
    assert first.reused is False
    new_sha = push_commit(lab.remote, "main", "news.txt", "news\n", lab.base)
    await lab.cache.mirror(lab.repo)
    assert await lab.cache.resolve(lab.repo, "refs/heads/main") == new_sha
    ws = Path(
        (
            await lab.cache.make_workspace(
                lab.repo, lab.workspaces / "wo-2", start_sha=new_sha, branch="codex/wo-2"
            )
        ).path
    )
    assert_clean_workspace(ws, sha=new_sha, branch="codex/wo-2", repo_shown=lab.repo)
    assert read(ws / "news.txt") == "news\n"
    assert git("rev-parse", "refs/remotes/origin/main", cwd=ws) == new_sha


async def test_a_workspace_borrows_the_mirrors_objects(lab: Lab) -> None:
    made = await lab.cache.make_workspace(
        lab.repo, lab.workspaces / "wo-1", start_sha=lab.main_sha, branch="codex/wo-1"
    )
    ws = Path(made.path)
    assert read(ws / ".git" / "objects" / "info" / "alternates") == f"{made.objects_dir}\n"
    assert objects_in(ws) == 0  # nothing copied
    assert made.objects_dir == str(lab.cache.mirror_path(lab.repo) / "objects")
    assert exists(borrow_grant(Path(made.objects_dir), ws))
    # The worker's own git (hardened, gitsafe) accepts the layout: alternates kept, commit works.
    (ws / "change.txt").write_text("changed\n")
    await run_git(["add", "--all"], cwd=ws, config=lab.config)
    await run_git(
        ["commit", "-qm", "change"],
        cwd=ws,
        config=lab.config,
        extra_env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", **_committer()},
    )
    assert exists(ws / ".git" / "objects" / "info" / "alternates")
    commit = git("rev-parse", "HEAD", cwd=ws)
    # The new objects are the workspace's own: the mirror never sees them.
    mirror = lab.cache.mirror_path(lab.repo)
    done = await run_git(["cat-file", "-e", commit], cwd=mirror, config=lab.config, check=False)
    assert done.exit_code != 0


def _committer() -> dict[str, str]:
    return {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


async def test_follow_up_starts_from_the_branch_an_earlier_job_pushed(lab: Lab) -> None:
    first = Path(
        (
            await lab.cache.make_workspace(
                lab.repo, lab.workspaces / "wo-1", start_sha=lab.main_sha, branch="codex/wo-1"
            )
        ).path
    )
    (first / "feature.txt").write_text("feature\n")
    git("add", "-A", cwd=first)
    git("commit", "-qm", "feature", cwd=first)
    pushed = git("rev-parse", "HEAD", cwd=first)
    await run_git(
        ["push", "-q", "--", lab.repo, "HEAD:refs/heads/codex/wo-1"],
        cwd=first,
        config=lab.config,
        remote=lab.repo,
    )
    # The follow-up names the pushed tip; the cache fetches it on its own when it is missing.
    fetches = lab.git.mirror_fetches()
    follow = await lab.cache.make_workspace(
        lab.repo, lab.workspaces / "wo-2", start_sha=pushed, branch="codex/wo-1-follow-up"
    )
    assert lab.git.mirror_fetches() == fetches + 1
    ws = Path(follow.path)
    assert_clean_workspace(ws, sha=pushed, branch="codex/wo-1-follow-up", repo_shown=lab.repo)
    assert read(ws / "feature.txt") == "feature\n"
    assert git("rev-parse", "refs/remotes/origin/codex/wo-1", cwd=ws) == pushed


async def test_an_unknown_start_commit_is_not_retryable(lab: Lab) -> None:
    with pytest.raises(ApplicationError) as info:
        await lab.cache.make_workspace(
            lab.repo, lab.workspaces / "wo-1", start_sha="1" * 40, branch="codex/wo-1"
        )
    assert info.value.type == START_COMMIT_NOT_FOUND and info.value.non_retryable
    with pytest.raises(ApplicationError) as info:
        await lab.cache.make_workspace(
            lab.repo, lab.workspaces / "wo-1", start_sha=lab.main_sha, branch="bad..name"
        )
    assert info.value.type == INVALID_BRANCH and info.value.non_retryable
    with pytest.raises(ApplicationError) as info:
        await lab.cache.mirror(f"file://{lab.base / 'missing.git'}")
    assert info.value.type == "RepositoryNotFound" and info.value.non_retryable


async def test_a_retry_refreshes_a_dirty_workspace(lab: Lab) -> None:
    path = lab.workspaces / "wo-1"
    await lab.cache.make_workspace(lab.repo, path, start_sha=lab.main_sha, branch="codex/wo-1")
    (path / "README.md").write_text("modified\n")
    (path / "untracked.txt").write_text("left over\n")
    git("checkout", "-q", "-b", "elsewhere", cwd=path)
    (path / ".git" / "index.lock").write_text("")  # a killed git's
    again = await lab.cache.make_workspace(
        lab.repo, path, start_sha=lab.main_sha, branch="codex/wo-1"
    )
    assert again.reused is True
    assert_clean_workspace(path, sha=lab.main_sha, branch="codex/wo-1", repo_shown=lab.repo)
    assert read(path / "README.md") == "# Sample\n" and not exists(path / "untracked.txt")

    # A directory that is not one of ours (a plain clone, here) is replaced.
    shutil.rmtree(path)
    git("clone", "-q", str(lab.remote), str(path), cwd=lab.base)
    replaced = await lab.cache.make_workspace(
        lab.repo, path, start_sha=lab.main_sha, branch="codex/wo-1"
    )
    assert replaced.reused is False and objects_in(path) == 0


# --- concurrency --------------------------------------------------------------------------


async def test_concurrent_workspaces_of_one_repository_from_several_tasks(lab: Lab) -> None:
    caches = [lab.cache, lab.other_cache(), lab.other_cache()]
    made = await asyncio.gather(
        *(
            caches[i % 3].make_workspace(
                lab.repo,
                lab.workspaces / f"wo-{i}",
                start_sha=lab.main_sha,
                branch=f"codex/wo-{i}",
            )
            for i in range(6)
        )
    )
    assert lab.git.count("init", "--bare") == 1  # one clone; the others waited and used it
    assert lab.git.mirror_fetches() == 1  # nor did they fetch again: that fetch was after them
    paths = [Path(m.path) for m in made]
    assert len(set(paths)) == 6
    for i, ws in enumerate(paths):
        assert_clean_workspace(ws, sha=lab.main_sha, branch=f"codex/wo-{i}", repo_shown=lab.repo)
    # Independent: a change in one is in no other.
    (paths[0] / "README.md").write_text("only in 0\n")
    git("commit", "-qam", "zero", cwd=paths[0])
    for ws in paths[1:]:
        assert read(ws / "README.md") == "# Sample\n"
        assert git("status", "--porcelain", cwd=ws) == ""


async def test_concurrent_workspaces_from_two_processes(lab: Lab) -> None:
    go = lab.base / "go"
    procs = []
    try:
        for i in range(2):
            spec = {
                "data_dir": str(lab.base / "data"),
                "root": str(lab.cache.root),
                "repo": lab.repo,
                "path": str(lab.workspaces / f"proc-{i}"),
                "sha": lab.main_sha,
                "branch": f"codex/proc-{i}",
                "go": str(go),
                "ready": str(lab.base / f"ready-{i}"),
            }
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.activities.repo_cache_child",
                    json.dumps(spec),
                    cwd=ROOT,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            )
        readies = [lab.base / f"ready-{i}" for i in range(2)]

        async def both_waiting() -> bool:
            return all(r.exists() for r in readies)

        await wait_until(both_waiting, within=30, what="both children waiting for the go file")
        go.write_text("go")
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()  # by pid, this test's own child
                await proc.wait()
    results = []
    for proc, (stdout, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stderr.decode()
        results.append(json.loads(stdout.decode().strip().splitlines()[-1]))  # after logs
    assert sorted(r["inits"] for r in results) == [0, 1]  # exactly one process cloned
    assert all(r["head"] == lab.main_sha for r in results)
    entries = [p for p in lab.cache.root.iterdir() if p.name not in ("locks", ".trash")]
    assert len(entries) == 1
    for i in range(2):
        ws = lab.workspaces / f"proc-{i}"
        assert_clean_workspace(ws, sha=lab.main_sha, branch=f"codex/proc-{i}", repo_shown=lab.repo)


# --- eviction ------------------------------------------------------------------------------


def _remote_with_blob(base: Path, name: str) -> str:
    """A bare repository with about 256 KiB of incompressible data; its file:// URL."""
    remote = make_bare_repo(base, name=name)
    scratch = base / f"{name}-blob"
    git("clone", "-q", str(remote), str(scratch), cwd=base)
    (scratch / "blob.bin").write_bytes(os.urandom(256 * 1024))
    git("add", "-A", cwd=scratch)
    git("commit", "-qm", "blob", cwd=scratch)
    git("push", "-q", "origin", "HEAD:main", cwd=scratch)
    return f"file://{remote}"


async def test_eviction_keeps_the_bound_and_never_removes_a_mirror_in_use(lab: Lab) -> None:
    a, b, c = (_remote_with_blob(lab.base, name) for name in ("a", "b", "c"))
    for repo in (a, b, c):
        await lab.cache.mirror(repo)
    sha_a = await lab.cache.resolve(a, "refs/heads/main")
    assert sha_a is not None
    ws_a = Path(
        (
            await lab.cache.make_workspace(
                a, lab.workspaces / "wo-a", start_sha=sha_a, branch="codex/a"
            )
        ).path
    )
    for age, repo in enumerate((a, b, c)):  # least recently used first: a, b, c
        os.utime(lab.cache.root / cache_key(repo) / "used", (1000 + age, 1000 + age))
    one = await lab.cache.size() // 3
    small = lab.other_cache(max_bytes=int(one * 1.5))

    async with small.hold(c):  # a job holds c: it is fetching it, or making a workspace
        report = await small.evict()
    # a: a live workspace borrows it; c: held. b goes, which is not enough: over the bound.
    assert report.evicted == (b,) and set(report.in_use) == {a, c} and report.over_bound
    assert not exists(lab.cache.mirror_path(b))
    assert git("cat-file", "-s", "HEAD:blob.bin", cwd=ws_a) == str(256 * 1024)  # still reads

    report = await small.evict()  # c is free now
    assert report.evicted == (c,) and report.in_use == (a,)
    assert not report.over_bound and await small.size() <= small.max_bytes

    # Removing the workspace unpins a; so does deleting it by hand (a stale grant).
    await lab.cache.remove_workspace(ws_a)
    assert not exists(ws_a)
    report = await lab.other_cache(max_bytes=0).evict()
    assert report.evicted == (a,) and await lab.cache.size() == 0

    await lab.cache.make_workspace(b, lab.workspaces / "wo-b", start_sha=_sha(lab, b), branch="x")
    shutil.rmtree(lab.workspaces / "wo-b")
    assert (await lab.other_cache(max_bytes=0).evict()).evicted == (b,)


def _sha(lab: Lab, repo: str) -> str:
    return git("rev-parse", "main", cwd=Path(repo.removeprefix("file://")))


async def test_the_mirror_a_job_just_fetched_is_kept_even_over_the_bound(lab: Lab) -> None:
    tiny = lab.other_cache(max_bytes=1)
    a = _remote_with_blob(lab.base, "a")
    mirror = await tiny.mirror(a)
    assert exists(mirror / "HEAD")  # over the bound, but about to be used
    made = await tiny.make_workspace(
        a, lab.workspaces / "wo-a", start_sha=_sha(lab, a), branch="codex/a"
    )
    b = _remote_with_blob(lab.base, "b")
    await tiny.mirror(b)  # evicts nothing in use: a is borrowed, b was just fetched
    assert exists(lab.cache.mirror_path(a) / "HEAD") and exists(mirror / "HEAD")
    assert git("status", "--porcelain", cwd=Path(made.path)) == ""
    await tiny.remove_workspace(Path(made.path))
    await tiny.mirror(b)
    assert not exists(lab.cache.mirror_path(a)) and exists(lab.cache.mirror_path(b))


async def test_packs_are_combined_as_fetches_add_them(lab: Lab) -> None:
    cache = lab.other_cache(max_packs=3)
    mirror = await cache.mirror(lab.repo)
    for i in range(8):
        push_commit(lab.remote, "main", f"f{i}.txt", f"{i}\n", lab.base)
        await cache.mirror(lab.repo)
        assert len(list((mirror / "objects" / "pack").glob("*.pack"))) <= 4
    assert lab.git.count("repack", "-d", "-q", "--geometric=2") >= 1
    assert git("fsck", "--connectivity-only", cwd=mirror) == ""


# --- what the agent can do to a workspace --------------------------------------------------


async def test_planted_config_and_hooks_reach_neither_the_mirror_nor_other_workspaces(
    lab: Lab,
) -> None:
    markers = lab.base / "markers"
    markers.mkdir()
    plant = lab.base / "plant"
    plant.mkdir()
    script = plant / "fire.sh"
    script.write_text(f'#!/bin/sh\ntouch "{markers}/$(basename "$0")-$$"\ncat\n')
    script.chmod(0o755)
    ws_a = Path(
        (
            await lab.cache.make_workspace(
                lab.repo, lab.workspaces / "wo-a", start_sha=lab.main_sha, branch="codex/a"
            )
        ).path
    )
    mirror = lab.cache.mirror_path(lab.repo)
    mirror_config = read(mirror / "config")
    mirror_files = listing(mirror)
    # The agent plants hooks, config that runs programs, a filter, and alternates into
    # another repository.
    hooks = ws_a / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("post-checkout", "reference-transaction", "pre-commit", "post-merge"):
        shutil.copy(script, hooks / hook)
    with (ws_a / ".git" / "config").open("a") as handle:
        handle.write(
            f"[core]\n\thooksPath = {hooks}\n\tfsmonitor = {script}\n"
            f'[remote "{mirror}"]\n\tuploadpack = {script}\n'
            f'[filter "x"]\n\tclean = {script}\n\tsmudge = {script}\n'
            f"[include]\n\tpath = {plant / 'more.config'}\n"
        )
    (plant / "more.config").write_text(f"[core]\n\tsshCommand = {script}\n")
    (ws_a / ".gitattributes").write_text("* filter=x\n")
    secret = make_bare_repo(lab.base, name="secret")
    alternates = ws_a / ".git" / "objects" / "info" / "alternates"
    granted = read(alternates)
    alternates.write_text(granted + f"{secret / 'objects'}\n")

    # The worker refreshes A (a retry), makes B, fetches the mirror.
    again = await lab.cache.make_workspace(lab.repo, ws_a, start_sha=lab.main_sha, branch="codex/a")
    ws_b = Path(
        (
            await lab.cache.make_workspace(
                lab.repo, lab.workspaces / "wo-b", start_sha=lab.main_sha, branch="codex/b"
            )
        ).path
    )
    push_commit(lab.remote, "main", "later.txt", "later\n", lab.base)
    await lab.cache.mirror(lab.repo)

    assert sorted(p.name for p in markers.iterdir()) == []
    assert again.reused is True
    assert read(alternates) == granted  # the ungranted line is gone, the granted one stays
    assert read(mirror / "config") == mirror_config
    now = listing(mirror)
    assert not [p for p in now if p.startswith("hooks") or "info/alternates" in p]
    assert set(mirror_files) - set(now) == set()  # nothing removed from the mirror
    b_config = git("config", "--list", "--local", cwd=ws_b)
    assert "fsmonitor" not in b_config and "hookspath" not in b_config.lower()
    assert_clean_workspace(ws_b, sha=lab.main_sha, branch="codex/b", repo_shown=lab.repo)


async def test_gitsafe_keeps_only_the_alternates_line_granted_to_this_workspace(
    lab: Lab,
) -> None:
    other_remote = make_bare_repo(lab.base, name="other")
    other = f"file://{other_remote}"
    ws_a = Path(
        (
            await lab.cache.make_workspace(
                lab.repo, lab.workspaces / "wo-a", start_sha=lab.main_sha, branch="codex/a"
            )
        ).path
    )
    other_sha = git("rev-parse", "main", cwd=other_remote)
    ws_b = Path(
        (
            await lab.cache.make_workspace(
                other, lab.workspaces / "wo-b", start_sha=other_sha, branch="codex/b"
            )
        ).path
    )
    mine = str(lab.cache.mirror_path(lab.repo) / "objects")
    others = str(lab.cache.mirror_path(other) / "objects")  # granted to B, not to A
    link = lab.base / "link-to-mine"
    link.symlink_to(mine)
    alternates = ws_a / ".git" / "objects" / "info" / "alternates"
    for planted in (
        [others],  # another mirror of the same cache: no grant for A there
        [str(lab.base / "secret.git" / "objects")],
        ["../../../../repo-cache/x/mirror.git/objects"],  # relative
        [str(link)],  # a symlink to the granted directory
        [f"{mine}/../objects"],  # not normalised
    ):
        alternates.write_text("".join(f"{line}\n" for line in [mine, *planted]))
        report = await sanitize_repository(ws_a)
        assert read(alternates) == f"{mine}\n", planted
        assert report.removed_files
    alternates.write_text(f"{others}\n")  # only someone else's
    await sanitize_repository(ws_a)
    assert not exists(alternates)
    # A grant for B does not make B's alternates usable from A's path, and vice versa.
    assert read(ws_b / ".git" / "objects" / "info" / "alternates") == f"{others}\n"
    assert not await sanitize_repository(ws_b)  # nothing to remove
    assert exists(ws_b / ".git" / "objects" / "info" / "alternates")
    # A symlinked grant is refused.
    grant = borrow_grant(Path(others), ws_b)
    fake = lab.base / "fake-grant"
    fake.write_text(read(grant))
    grant.unlink()
    grant.symlink_to(fake)
    await sanitize_repository(ws_b)
    assert not exists(ws_b / ".git" / "objects" / "info" / "alternates")


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")
async def test_in_the_sandbox_the_agents_git_reads_the_mirror_but_cannot_write_it(
    lab: Lab,
) -> None:
    made = await lab.cache.make_workspace(
        lab.repo, lab.workspaces / "wo-a", start_sha=lab.main_sha, branch="codex/a"
    )
    ws, objects = Path(made.path), Path(made.objects_dir)
    before = listing(objects)
    # The wiring the sandbox needs: the mirror's objects directory, read-only, same path.
    config = SandboxConfig(extra_read_only=(objects,))
    home, tmp = step_dirs(lab.base / "private", "agent")
    policy = config.policy(workspace=ws, home=home, tmp=tmp, network=False)
    script = (
        "set -e; git log -1 --format=%H; echo new > agent.txt; git add agent.txt;"
        " git -c user.name=a -c user.email=a@a commit -qm agent;"
        f" if touch {objects}/pack/evil 2>/dev/null; then echo WROTE; fi;"
        f" if rm -rf {objects}/pack 2>/dev/null; then echo REMOVED; fi; echo done"
    )
    env = sandbox_env(policy, child_env())
    argv = bwrap_argv(policy, ["/bin/sh", "-c", script], ws, env)
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert out.splitlines()[0] == lab.main_sha and "WROTE" not in out and "REMOVED" not in out
    assert listing(objects) == before  # the mirror is untouched
    assert git("log", "-1", "--format=%s", cwd=ws) == "agent"  # its commit is in its own .git
