"""Section 5: workspaces from the repository cache against a fetch per work order.

On a large generated repository (:mod:`tools.bench.large_repo`), served as a ``file://``
remote (no network: the remote's pack is read from local disk, usually from the page cache):

- job 1, cold cache: ``Workspaces.prepare`` (the ``prepare_workspace`` activity's work) clones
  the mirror, then makes the job's workspace from it;
- jobs 2..N, warm cache (new work orders; before each, one new commit lands on ``main``):
  an incremental fetch into the mirror, then a workspace;
- a follow-up: job 1 pushes its work branch; the follow-up's prepare fetches it and makes a
  workspace at its head;
- before the cache: a fresh repository, a full fetch and a checkout per work order (what
  ``prepare_workspace`` did until the cache), alternating with the cold runs;
- disk: the mirror, and one workspace's ``.git`` each way.

Every measurement starts after ``sync``, so the writeback of what an earlier one wrote (a
cold clone writes the whole pack) does not land in the next one's figure.

``python -m tools.bench --only workspaces [--quick]`` runs this section alone, without the
local stack. Prints, never asserts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import time
from pathlib import Path

import structlog

from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.gitcli import run_git
from activities.models import JobSpec, ParentRef, Workspace
from activities.storage import FileStore
from activities.workspace import Workspaces
from tools.bench.large_repo import LARGE, MEDIUM, ensure_repo
from tools.bench.measure import row, section
from tools.bench.stack import BenchError, Sizes

_IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.test",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.test",
}


def _disk_mib(path: Path) -> float:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total / 2**20


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_IDENTITY, "GIT_CONFIG_GLOBAL": "/dev/null"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed: {done.stderr[-500:]}")
    return done.stdout.strip()


def _commit_file(ws: Path, name: str, text: str) -> str:
    (ws / name).write_text(text)
    _git("add", "-A", cwd=ws)
    _git("commit", "-qm", f"bench: {name}", cwd=ws)
    return _git("rev-parse", "HEAD", cwd=ws)


async def bench_workspaces(base: Path, sizes: Sizes) -> None:
    # The activities' info lines (mirror_cloned, workspace_from_cache...) would interleave
    # with the table: this process keeps warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    shape = LARGE if sizes.ws_repo == "large" else MEDIUM
    built = ensure_repo(shape)
    remote = base / "remote.git"
    _git("clone", "-q", "--bare", str(built.path), str(remote), cwd=base)  # hardlinks
    repo = f"file://{remote}"
    section(
        "5. Workspaces: repository cache (activities/repo_cache.py) vs a fetch per work order",
        f"repository: {built.describe()}",
        f"{built.path}; served as {repo}: local disk, no network, so clone figures"
        " are a floor (a network adds the transfer to the cold and today's rows only)",
    )
    if built.build_seconds:
        row(
            "building the repository (once; cached under .jangar/bench/repos)",
            built.build_seconds,
            "s",
        )
    row("repository: packed size", built.pack_bytes / 2**20, "MiB", f"{built.objects} objects")
    row(
        "repository: checked-out tree of main",
        built.tree_bytes / 2**20,
        "MiB",
        f"{built.tree_files} files",
    )
    config = JobConfig(
        data_dir=base / "data",
        git_timeout_seconds=1800.0,
        git_author_name="Bench",
        git_author_email="bench@example.test",
        allow_local_repos=True,
    )
    convex = ConvexClient("http://127.0.0.1:9", "unused")  # prepare never touches storage

    def job(order: str, parent: ParentRef | None = None) -> JobSpec:
        return JobSpec(
            work_order_id=order,
            repo=repo,
            base_branch="main",
            branch=parent.branch if parent else f"codex/{order}",
            prompt="bench",
            title="bench",
            parent=parent,
        )

    async def prepare(spaces: Workspaces, spec: JobSpec) -> tuple[float, Workspace]:
        """The prepare_workspace activity's work: mirror fetch, resolve, workspace."""
        await asyncio.to_thread(os.sync)  # earlier writes (hundreds of MB) are not measured
        started = time.perf_counter()
        made = await spaces.prepare(spec)
        return time.perf_counter() - started, made

    async def before(order: str) -> float:
        """What prepare_workspace did before the cache: a fresh repository, a full fetch of
        every branch and a checkout, per work order."""
        ws = base / "before" / order
        ws.mkdir(parents=True)
        await asyncio.to_thread(os.sync)
        started = time.perf_counter()
        await run_git(["init", "--quiet"], cwd=ws, config=config)
        await run_git(
            ["fetch", "--quiet", "--no-tags", "--", repo, "+refs/heads/*:refs/remotes/origin/*"],
            cwd=ws,
            config=config,
            remote=repo,
        )
        await run_git(
            ["checkout", "--quiet", "--force", "-B", f"codex/{order}", "origin/main"],
            cwd=ws,
            config=config,
        )
        return time.perf_counter() - started

    # Job 1 on a cold cache (a fresh data directory per run), alternating with the old way.
    colds: list[float] = []
    fresh: list[float] = []
    spaces: Workspaces | None = None
    first: Workspace | None = None
    for run in range(sizes.ws_cold_runs):
        spaces = Workspaces(
            config.model_copy(update={"data_dir": base / f"data-{run}"}), files=FileStore(convex)
        )
        seconds, first = await prepare(spaces, job(f"job-1-{run}"))
        colds.append(seconds)
        fresh.append(await before(f"before-{run}"))
    assert spaces is not None and first is not None
    cold = statistics.median(colds)
    spread = f"of {len(colds)}: " + ", ".join(f"{c:.2f}" for c in colds)
    row(
        "job 1, cold cache: prepare_workspace (mirror clone + workspace), median", cold, "s", spread
    )

    # Jobs 2..N, new work orders on the warm cache; a new commit lands on main before each.
    upstream = base / "upstream"
    _git("clone", "-q", "--shared", str(remote), str(upstream), cwd=base)
    warm: list[float] = []
    for i in range(sizes.ws_warm_jobs):
        _commit_file(upstream, f"upstream-{i}.txt", f"upstream change {i}\n")
        _git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=upstream)
        seconds, _ = await prepare(spaces, job(f"job-{i + 2}"))
        warm.append(seconds)
    median = statistics.median(warm)
    row(
        f"jobs 2..{sizes.ws_warm_jobs + 1}, warm cache: prepare_workspace (fetch + workspace),"
        " median",
        median,
        "s",
        f"min {min(warm):.2f}, max {max(warm):.2f}",
    )

    # Follow-up: job 1 pushes its branch; the follow-up starts from its head.
    first_path = spaces.path_for(first.state.work_order_id)
    (first_path / "README.md").write_text("# Changed by job 1\n")
    head = _commit_file(first_path, "job-1.txt", "job 1's work\n")
    await run_git(
        ["push", "-q", "--", repo, f"HEAD:refs/heads/{first.state.branch}"],
        cwd=first_path,
        config=config,
        remote=repo,
    )
    parent = ParentRef(
        work_order_id=first.state.work_order_id, branch=first.state.branch, commit_sha=head
    )
    follow_s, follow = await prepare(spaces, job("follow-up", parent))
    if follow.state.commit_sha != head:
        raise BenchError("the follow-up's workspace is not at job 1's pushed head")
    row("follow-up: prepare_workspace at job 1's pushed head", follow_s, "s")
    row("speed-up: cold / warm (medians)", cold / median, "x", "aim: >= 10x")

    old = statistics.median(fresh)
    row(
        "before the cache: a fresh repository + full fetch per work order, median",
        old,
        "s",
        f"of {len(fresh)}: " + ", ".join(f"{t:.2f}" for t in fresh),
    )
    row("speed-up: before / warm cache (medians)", old / median, "x")
    row("load average (1 min) at the end", os.getloadavg()[0], "", "2+ on 2 cores: noisy")

    row(
        "disk: the mirror (one per repository per worker)",
        _disk_mib(spaces.cache.mirror_path(repo)),
        "MiB",
    )
    row("disk: a cache workspace's .git (objects borrowed)", _disk_mib(first_path / ".git"), "MiB")
    row(
        "disk: a workspace's .git before the cache (full copy per work order)",
        _disk_mib(base / "before" / "before-0" / ".git"),
        "MiB",
    )
    await convex.aclose()
