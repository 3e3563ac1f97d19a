"""Section 5: workspaces from the repository cache against a fetch per work order.

On a large generated repository (:mod:`tools.bench.large_repo`), served as a ``file://``
remote (no network: the remote's pack is read from local disk, usually from the page cache):

- job 1, cold cache: :meth:`RepoCache.mirror` clones the mirror, then
  :meth:`RepoCache.make_workspace` makes the job's workspace;
- jobs 2..N, warm cache (new work orders; before each, one new commit lands on ``main``):
  an incremental fetch into the mirror, then a workspace;
- a follow-up: job 1 pushes its work branch; the follow-up fetches it and makes a workspace
  at its head;
- today's approach, :func:`activities.workspace.prepare_workspace` (a fresh repository and a
  full fetch per work order) for a new work order, and again for the same one (its retry
  path, which reuses the workspace);
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
from activities.gitcli import run_git
from activities.gitrunner import git_runner
from activities.models import PrepareWorkspaceInput
from activities.repo_cache import RepoCache
from activities.workspace import prepare_workspace
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
    )
    runner = git_runner(config)
    workspaces = config.workspaces_root

    async def cached_job(cache: RepoCache, name: str, ref: str) -> tuple[float, float, Path]:
        await asyncio.to_thread(os.sync)  # earlier writes (hundreds of MB) are not measured
        started = time.perf_counter()
        await cache.mirror(repo)
        fetched = time.perf_counter()
        sha = await cache.resolve(repo, ref)
        if sha is None:
            raise BenchError(f"{ref} is not in the mirror")
        made = await cache.make_workspace(
            repo, workspaces / name, start_sha=sha, branch=f"codex/{name}"
        )
        done = time.perf_counter()
        return fetched - started, done - fetched, Path(made.path)

    async def today(order: str) -> float:
        """Today's approach: prepare_workspace, a fresh repository and fetch per order."""
        await asyncio.to_thread(os.sync)
        started = time.perf_counter()
        await prepare_workspace(
            PrepareWorkspaceInput(
                work_order_id=order, repo=repo, base_branch="main", branch=f"codex/{order}"
            ),
            config,
        )
        return time.perf_counter() - started

    # Job 1 on a cold cache, alternating with today's new work order (same conditions).
    colds: list[tuple[float, float]] = []
    fresh: list[float] = []
    for run in range(sizes.ws_cold_runs):
        cache = RepoCache(config.data_dir / f"repo-cache-{run}", max_bytes=20 * 2**30, git=runner)
        clone_s, ws_s, first = await cached_job(cache, f"job-1-{run}", "refs/heads/main")
        colds.append((clone_s, ws_s))
        fresh.append(await today(f"today-{run}"))
    cold = statistics.median(c + w for c, w in colds)
    spread = f"of {len(colds)}: " + ", ".join(f"{c + w:.2f}" for c, w in colds)
    row("job 1, cold cache: mirror clone + workspace, median", cold, "s", spread)
    row(
        "    mirror clone (git init --bare + full fetch)",
        statistics.median(c for c, _ in colds),
        "s",
    )
    row("    workspace (borrowing clone + checkout)", statistics.median(w for _, w in colds), "s")

    # Jobs 2..N, new work orders on the warm cache; a new commit lands on main before each.
    upstream = base / "upstream"
    _git("clone", "-q", "--shared", str(remote), str(upstream), cwd=base)
    warm: list[tuple[float, float]] = []
    for i in range(sizes.ws_warm_jobs):
        _commit_file(upstream, f"upstream-{i}.txt", f"upstream change {i}\n")
        _git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=upstream)
        fetch_s, ws_s, _ = await cached_job(cache, f"job-{i + 2}", "refs/heads/main")
        warm.append((fetch_s, ws_s))
    totals = [f + w for f, w in warm]
    median = statistics.median(totals)
    row(
        f"jobs 2..{sizes.ws_warm_jobs + 1}, warm cache: fetch + workspace, median",
        median,
        "s",
        f"min {min(totals):.2f}, max {max(totals):.2f}",
    )
    row(
        "    incremental fetch (one new commit), median", statistics.median(f for f, _ in warm), "s"
    )
    row("    workspace, median", statistics.median(w for _, w in warm), "s")

    # Follow-up: job 1 pushes its branch; the follow-up starts from its head.
    (first / "README.md").write_text("# Changed by job 1\n")
    head = _commit_file(first, "job-1.txt", "job 1's work\n")
    await run_git(
        ["push", "-q", "--", repo, "HEAD:refs/heads/codex/job-1"],
        cwd=first,
        config=config,
        remote=repo,
    )
    fu_fetch, fu_ws, follow = await cached_job(cache, "follow-up", "refs/heads/codex/job-1")
    if _git("rev-parse", "HEAD", cwd=follow) != head:
        raise BenchError("the follow-up's workspace is not at job 1's pushed head")
    row("follow-up: fetch job 1's pushed branch + workspace at it", fu_fetch + fu_ws, "s")
    row("    fetch", fu_fetch, "s")
    row("    workspace", fu_ws, "s")
    row("speed-up: cold / warm (medians)", cold / median, "x", "aim: >= 10x")

    today_fresh = statistics.median(fresh)
    again = await today("today-0")
    row(
        "today (prepare_workspace): a new work order, full fetch, median",
        today_fresh,
        "s",
        f"of {len(fresh)}: " + ", ".join(f"{t:.2f}" for t in fresh),
    )
    row("today: the same work order again (retry path: reuse + fetch)", again, "s")
    row("speed-up: today's new work order / warm cache (medians)", today_fresh / median, "x")
    row("load average (1 min) at the end", os.getloadavg()[0], "", "2+ on 2 cores: noisy")

    row(
        "disk: the mirror (one per repository per worker)",
        _disk_mib(cache.mirror_path(repo)),
        "MiB",
    )
    row("disk: a cache workspace's .git (objects borrowed)", _disk_mib(first / ".git"), "MiB")
    row(
        "disk: today's workspace's .git (full copy per work order)",
        _disk_mib(workspaces / "today-0" / ".git"),
        "MiB",
    )
