"""Workspace checkpoints (activities/checkpoint.py) on real git repositories.

Two workers are two data directories, each with its own repository cache: a checkpoint made
on A is restored on B from the bundle file alone (A's directory is deleted first), giving the
same commit and the same files. Also: determinism of the commit sha, the unchanged case,
restoring twice and onto a dirty workspace, bundles that must be refused, and no program
planted in the workspace running while a checkpoint is made.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.checkpoint import (
    CHECKPOINT_BASE_MISSING,
    CHECKPOINT_INVALID,
    Checkpoint,
    create_checkpoint,
    restore_checkpoint,
)
from activities.config import JobConfig
from activities.gitrunner import GitRunner, git_runner
from activities.repo_cache import RepoCache
from tests.activities.conftest import exists, make_config, read
from tests.git_repos import git, make_bare_repo

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
AUTHOR = ("Jangar Checkpoint", "checkpoint@example.test")


@dataclass
class Worker:
    """One worker: its own data directory, config, git runner and repository cache."""

    data: Path
    config: JobConfig
    git: GitRunner
    cache: RepoCache

    async def workspace(self, repo: str, sha: str, name: str = "wo-1") -> Path:
        made = await self.cache.make_workspace(
            repo, self.config.workspaces_root / name, start_sha=sha, branch=f"codex/{name}"
        )
        return Path(made.path)


def make_worker(base: Path, name: str) -> Worker:
    config = make_config(base / name)
    runner = git_runner(config)
    cache = RepoCache(config.data_dir / "repo-cache", max_bytes=10**12, git=runner)
    return Worker(config.data_dir, config, runner, cache)


@dataclass
class Lab:
    base: Path
    repo: str
    base_sha: str
    a: Worker
    b: Worker


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    base = tmp_path.resolve()
    remote = make_bare_repo(base)
    seed = base / "seed"
    git("clone", "-q", str(remote), str(seed), cwd=base)
    (seed / "src").mkdir()
    (seed / "src" / "app.py").write_text("print('hello')\n" * 20)
    (seed / "src" / "old.py").write_text("old = True\n")
    (seed / "run.sh").write_text("#!/bin/sh\necho run\n")
    (seed / ".gitignore").write_text("build/\n*.log\n")
    git("add", "-A", cwd=seed)
    git("commit", "-qm", "base", cwd=seed)
    git("push", "-q", "origin", "HEAD:main", cwd=seed)
    return Lab(
        base=base,
        repo=f"file://{remote}",
        base_sha=git("rev-parse", "HEAD", cwd=seed),
        a=make_worker(base, "worker-a"),
        b=make_worker(base, "worker-b"),
    )


def size_of(path: str | Path) -> int:
    return Path(path).stat().st_size


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def snapshot(ws: Path) -> dict[str, tuple[str, bool, bytes]]:
    """Every entry of a working tree (not .git): kind, executable bit, content or target."""
    entries: dict[str, tuple[str, bool, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(ws):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]:
            path = Path(dirpath) / name
            key = str(path.relative_to(ws))
            if path.is_symlink():
                entries[key] = ("link", False, os.readlink(path).encode())
            else:
                executable = bool(path.stat().st_mode & stat.S_IXUSR)
                entries[key] = ("file", executable, path.read_bytes())
    return entries


def agent_edits(ws: Path) -> None:
    """What an agent might leave: edits, a deletion, new files, a mode change, a symlink, an
    own commit, and ignored build output."""
    (ws / "README.md").write_text("# Sample\n\nEdited by the agent.\n")
    git("add", "README.md", cwd=ws)
    git("commit", "-qm", "agent's own commit", cwd=ws)  # flattened into the checkpoint
    (ws / "src" / "old.py").unlink()
    (ws / "src" / "new").mkdir()
    (ws / "src" / "new" / "mod.py").write_text("def f():\n    return 1\n")
    (ws / "src" / "app.py").write_text("print('hello, world')\n" * 20)
    (ws / "run.sh").chmod(0o755)
    (ws / "latest").symlink_to("src/app.py")
    (ws / "build").mkdir()
    (ws / "build" / "out.o").write_bytes(b"\0" * 100)
    (ws / "debug.log").write_text("ignored\n")
    git("add", "src/new/mod.py", cwd=ws)  # staged, not committed


def without_ignored(
    entries: dict[str, tuple[str, bool, bytes]],
) -> dict[str, tuple[str, bool, bytes]]:
    return {k: v for k, v in entries.items() if not k.startswith("build/") and k != "debug.log"}


async def checkpoint(lab: Lab, ws: Path, worker: Worker, **kwargs: object) -> Checkpoint:
    values: dict[str, object] = {
        "base_sha": lab.base_sha,
        "message": "checkpoint after the agent",
        "author": AUTHOR,
        "at": AT,
        "out": worker.data / "checkpoints" / "cp.bundle",
        "git": worker.git,
    }
    values.update(kwargs)
    return await create_checkpoint(ws, **values)  # type: ignore[arg-type]


async def test_round_trip_between_two_workers_from_the_bundle_file_alone(lab: Lab) -> None:
    ws_a = await lab.a.workspace(lab.repo, lab.base_sha)
    agent_edits(ws_a)
    expected = without_ignored(snapshot(ws_a))
    head_before = git("rev-parse", "HEAD", cwd=ws_a)
    cp = await checkpoint(lab, ws_a, lab.a)
    assert cp.changed and cp.base_sha == lab.base_sha and cp.commit_sha != lab.base_sha
    assert cp.bundle_path is not None and cp.bundle_bytes == size_of(cp.bundle_path)
    assert (cp.files_changed, cp.insertions, cp.deletions) == (6, 25, 21)  # run.sh: mode
    # Making it changed neither the agent's branch nor its files.
    assert git("rev-parse", "HEAD", cwd=ws_a) == head_before
    assert without_ignored(snapshot(ws_a)) == expected and exists(ws_a / "debug.log")

    # Worker B: only the bundle file travels; worker A's whole directory is gone.
    carried = lab.b.data / "incoming" / "cp.bundle"
    carried.parent.mkdir(parents=True)
    shutil.copy(cp.bundle_path, carried)
    shutil.rmtree(lab.a.data)
    ws_b = await lab.b.workspace(lab.repo, lab.base_sha)
    restored = await restore_checkpoint(
        ws_b, bundle=carried, commit_sha=cp.commit_sha, branch="codex/wo-1", git=lab.b.git
    )
    assert restored == cp.commit_sha
    assert git("rev-parse", "HEAD", cwd=ws_b) == cp.commit_sha
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws_b) == "codex/wo-1"
    assert git("rev-parse", "HEAD^", cwd=ws_b) == lab.base_sha  # ONE commit on the base
    assert git("log", "-1", "--format=%an <%ae> %at|%cn <%ce> %ct|%s", cwd=ws_b) == (
        f"{AUTHOR[0]} <{AUTHOR[1]}> {int(AT.timestamp())}|"
        f"{AUTHOR[0]} <{AUTHOR[1]}> {int(AT.timestamp())}|checkpoint after the agent"
    )
    assert snapshot(ws_b) == expected
    assert git("status", "--porcelain", "--ignored", cwd=ws_b) == ""


async def test_the_same_tree_gives_the_same_commit(lab: Lab) -> None:
    ws_a = await lab.a.workspace(lab.repo, lab.base_sha)
    agent_edits(ws_a)
    first = await checkpoint(lab, ws_a, lab.a)
    again = await checkpoint(lab, ws_a, lab.a, out=lab.a.data / "retry.bundle")  # a retry
    assert again.commit_sha == first.commit_sha
    # Elsewhere, from the same files: same sha too (the commit depends on nothing else).
    ws_b = await lab.b.workspace(lab.repo, lab.base_sha)
    assert first.bundle_path is not None
    await restore_checkpoint(
        ws_b,
        bundle=Path(first.bundle_path),
        commit_sha=first.commit_sha,
        branch="codex/wo-1",
        git=lab.b.git,
    )
    on_b = await checkpoint(lab, ws_b, lab.b)
    assert on_b.commit_sha == first.commit_sha
    # The same instant in another time zone is another commit (git records the offset);
    # another time, message or author is another commit.
    east = AT.astimezone(timezone(timedelta(hours=2)))
    for change in ({"at": east}, {"at": AT + timedelta(seconds=1)}, {"message": "other"}):
        other = await checkpoint(lab, ws_a, lab.a, out=lab.a.data / "other.bundle", **change)
        assert other.commit_sha != first.commit_sha


async def test_an_unchanged_tree_is_not_a_checkpoint(lab: Lab) -> None:
    ws = await lab.a.workspace(lab.repo, lab.base_sha)
    out = lab.a.data / "cp.bundle"
    cp = await checkpoint(lab, ws, lab.a, out=out)
    assert not cp.changed and cp.commit_sha == lab.base_sha and cp.bundle_path is None
    assert cp.bundle_bytes == 0 and not exists(out)
    # Changes undone (and a commit whose tree is the base's), ignored output: unchanged too.
    (ws / "README.md").write_text("changed\n")
    git("commit", "-qam", "change", cwd=ws)
    (ws / "README.md").write_text("# Sample\n")
    git("commit", "-qam", "undo", cwd=ws)
    (ws / "debug.log").write_text("ignored\n")
    assert not (await checkpoint(lab, ws, lab.a, out=out)).changed
    with pytest.raises(ValueError, match="timezone-aware"):
        await checkpoint(lab, ws, lab.a, at=datetime(2026, 1, 1))


async def test_restoring_twice_or_onto_a_dirty_workspace_gives_exactly_the_checkpoint(
    lab: Lab,
) -> None:
    ws_a = await lab.a.workspace(lab.repo, lab.base_sha)
    agent_edits(ws_a)
    expected = without_ignored(snapshot(ws_a))
    cp = await checkpoint(lab, ws_a, lab.a)
    assert cp.bundle_path is not None
    bundle = Path(cp.bundle_path)
    ws_b = await lab.b.workspace(lab.repo, lab.base_sha)
    for _ in range(2):
        await restore_checkpoint(
            ws_b, bundle=bundle, commit_sha=cp.commit_sha, branch="codex/wo-1", git=lab.b.git
        )
        assert snapshot(ws_b) == expected

    # A killed attempt left the workspace dirty: modified, deleted, extra, ignored and staged
    # files, another branch, a merge in progress and a stale index.lock.
    (ws_b / "src" / "app.py").write_text("half-written\n")
    (ws_b / "README.md").unlink()
    (ws_b / "extra.txt").write_text("extra\n")
    (ws_b / "src" / "new" / "extra.py").write_text("extra\n")
    (ws_b / "build").mkdir()
    (ws_b / "build" / "cache.bin").write_bytes(b"x" * 10)
    (ws_b / "staged.txt").write_text("staged\n")
    git("add", "staged.txt", cwd=ws_b)
    git("checkout", "-q", "-b", "elsewhere", cwd=ws_b)
    (ws_b / "latest").unlink()
    (ws_b / "latest").write_text("not a link any more\n")
    (ws_b / ".git" / "MERGE_HEAD").write_text(lab.base_sha + "\n")
    (ws_b / ".git" / "index.lock").write_text("")
    await restore_checkpoint(
        ws_b, bundle=bundle, commit_sha=cp.commit_sha, branch="codex/wo-1", git=lab.b.git
    )
    assert snapshot(ws_b) == expected
    assert git("rev-parse", "HEAD", cwd=ws_b) == cp.commit_sha
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws_b) == "codex/wo-1"
    assert git("status", "--porcelain", "--ignored", cwd=ws_b) == ""
    assert not exists(ws_b / ".git" / "MERGE_HEAD")


async def test_bundles_that_do_not_hold_exactly_the_expected_commit_are_refused(
    lab: Lab,
) -> None:
    ws_a = await lab.a.workspace(lab.repo, lab.base_sha)
    agent_edits(ws_a)
    cp = await checkpoint(lab, ws_a, lab.a)
    assert cp.bundle_path is not None
    bundle = Path(cp.bundle_path)
    ws_b = await lab.b.workspace(lab.repo, lab.base_sha)
    (ws_b / "work.txt").write_text("in progress\n")  # must survive every refusal

    async def refused(bundle: Path, commit_sha: str, ws: Path = ws_b) -> ApplicationError:
        with pytest.raises(ApplicationError) as info:
            await restore_checkpoint(
                ws, bundle=bundle, commit_sha=commit_sha, branch="codex/wo-1", git=lab.b.git
            )
        assert info.value.non_retryable
        return info.value

    assert (await refused(bundle, lab.base_sha)).type == CHECKPOINT_INVALID  # other commit
    assert (await refused(lab.base / "missing.bundle", cp.commit_sha)).type == CHECKPOINT_INVALID
    garbage = lab.base / "garbage.bundle"
    garbage.write_bytes(b"# v2 git bundle\nnot really\n")
    assert (await refused(garbage, cp.commit_sha)).type == CHECKPOINT_INVALID
    truncated = lab.base / "truncated.bundle"
    truncated.write_bytes(read_bytes(bundle)[:-40])
    assert (await refused(truncated, cp.commit_sha)).type == CHECKPOINT_INVALID
    two = lab.base / "two.bundle"
    git("branch", "-f", "second", "HEAD", cwd=ws_a)
    git("bundle", "create", "-q", str(two), "refs/jangar/checkpoint", "second", cwd=ws_a)
    assert (await refused(two, cp.commit_sha)).type == CHECKPOINT_INVALID
    # A workspace of another repository lacks the base the bundle needs.
    other = make_bare_repo(lab.base, name="unrelated")
    ws_other = await lab.b.workspace(
        f"file://{other}", git("rev-parse", "main", cwd=other), name="wo-other"
    )
    error = await refused(bundle, cp.commit_sha, ws_other)
    assert error.type == CHECKPOINT_BASE_MISSING
    assert read(ws_b / "work.txt") == "in progress\n"
    assert git("rev-parse", "HEAD", cwd=ws_b) == lab.base_sha


async def test_no_planted_program_runs_while_a_checkpoint_is_made(lab: Lab) -> None:
    ws = await lab.a.workspace(lab.repo, lab.base_sha)
    markers = lab.base / "markers"
    markers.mkdir()
    script = lab.base / "fire.sh"
    script.write_text(f'#!/bin/sh\ntouch "{markers}/fired-$$"\ncat\n')
    script.chmod(0o755)
    with (ws / ".git" / "config").open("a") as handle:
        handle.write(
            f'[filter "x"]\n\tclean = {script}\n\tsmudge = {script}\n'
            f"[core]\n\tfsmonitor = {script}\n\thooksPath = {lab.base}\n"
        )
    for hook in ("pre-commit", "post-commit", "reference-transaction", "post-checkout"):
        shutil.copy(script, ws / ".git" / "hooks" / hook)
    (ws / ".gitattributes").write_text("* filter=x\n")
    (ws / "new.txt").write_text("raw content\n")
    cp = await checkpoint(lab, ws, lab.a)
    assert cp.changed and list(markers.iterdir()) == []
    shown = git("show", f"{cp.commit_sha}:new.txt", cwd=ws)
    assert shown == "raw content"
