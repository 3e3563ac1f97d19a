"""The worker's git is not steerable by the workspace.

Each test plants one thing in a workspace (a hook, an fsmonitor, a filter driver with
.gitattributes, diff.external, an include that sets fsmonitor, an uploadpack/receivepack for
the remote's URL, an insteadOf redirect), every planted program touching a marker file. The
worker's git operations (add, diff, commit, fetch, push) through ``run_git`` must run none of
them while the commit still holds the files; the same operations with plain git (the control)
must run them, which shows the plant is real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.gitcli import UNSAFE_WORKSPACE, run_git
from activities.gitsafe import (
    MINIMAL_CONFIG,
    hardening_args,
    parse_list_z,
    render_config,
    sanitize_repository,
)
from activities.jobs import JobActivities
from activities.models import CommitAndPushInput, PrepareWorkspaceInput
from tests.activities.conftest import RecordingEnvironment, exists, job_spec, read
from tests.git_repos import git, make_bare_repo

FETCH_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Jangar Test",
    "GIT_AUTHOR_EMAIL": "jangar-test@example.test",
    "GIT_COMMITTER_NAME": "Jangar Test",
    "GIT_COMMITTER_EMAIL": "jangar-test@example.test",
}


@dataclass
class Lab:
    """A bare remote, a workspace cloned from it, a decoy remote and a markers directory."""

    base: Path
    remote: Path
    url: str  # file:// URL of the remote (git reads remote."<url>".* config for it)
    decoy: Path
    workspace: Path
    markers: Path
    plant: Path

    def script(self, name: str, then: str = "") -> Path:
        """An executable that touches markers/<name>, then runs ``then``."""
        path = self.plant / f"{name}.sh"
        path.write_text(f'#!/bin/sh\ntouch "{self.markers / name}"\n{then}\n')
        path.chmod(0o755)
        return path

    def fired(self) -> list[str]:
        return sorted(p.name for p in self.markers.iterdir())

    def add_config(self, text: str) -> None:
        with (self.workspace / ".git" / "config").open("a") as handle:
            handle.write(text)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    base = tmp_path.resolve()
    remote = make_bare_repo(base)
    decoy = make_bare_repo(base, name="decoy")
    workspace = base / "data" / "workspaces" / "wo-plant"
    workspace.parent.mkdir(parents=True)
    git("clone", "-q", f"file://{remote}", str(workspace), cwd=base)
    git("checkout", "-q", "-b", "work", cwd=workspace)
    markers, plant = base / "markers", base / "plant"
    markers.mkdir()
    plant.mkdir()
    return Lab(base, remote, f"file://{remote}", decoy, workspace, markers, plant)


def plant_hooks(lab: Lab) -> None:
    hooks = lab.workspace / ".git" / "hooks"
    for name in (
        "pre-commit",
        "post-commit",
        "reference-transaction",
        "post-index-change",
        "pre-push",
    ):
        script = lab.script(f"hook-{name}")
        (hooks / name).write_text(f"#!/bin/sh\nexec {script}\n")
        (hooks / name).chmod(0o755)


def plant_fsmonitor(lab: Lab) -> None:
    lab.add_config(f"[core]\n\tfsmonitor = {lab.script('fsmonitor')}\n")


def plant_filter(lab: Lab) -> None:
    clean, smudge = lab.script("filter-clean", "cat"), lab.script("filter-smudge", "cat")
    lab.add_config(f'[filter "x"]\n\tclean = {clean}\n\tsmudge = {smudge}\n\trequired = true\n')
    (lab.workspace / ".gitattributes").write_text("*.txt filter=x\n")


def plant_diff_drivers(lab: Lab) -> None:
    external = lab.script("diff-external")
    command, textconv = lab.script("diff-command"), lab.script("diff-textconv", 'cat "$1"')
    lab.add_config(
        f"[diff]\n\texternal = {external}\n"
        f'[diff "x"]\n\tcommand = {command}\n\ttextconv = {textconv}\n'
    )
    (lab.workspace / ".gitattributes").write_text("*.txt diff=x\n")


def plant_include(lab: Lab) -> None:
    evil = lab.plant / "evil.cfg"
    evil.write_text(f"[core]\n\tfsmonitor = {lab.script('include-fsmonitor')}\n")
    lab.add_config(f'[include]\n\tpath = {evil}\n[includeIf "gitdir:/"]\n\tpath = {evil}\n')


def plant_upload_receive_pack(lab: Lab) -> None:
    upload = lab.script("uploadpack", 'exec git-upload-pack "$@"')
    receive = lab.script("receivepack", 'exec git-receive-pack "$@"')
    lab.add_config(f'[remote "{lab.url}"]\n\tuploadpack = {upload}\n\treceivepack = {receive}\n')


def plant_insteadof(lab: Lab) -> None:
    lab.add_config(f'[url "file://{lab.decoy}"]\n\tinsteadOf = {lab.url}\n')


def plant_nested_repository(lab: Lab) -> None:
    """A nested repository (already a gitlink of the workspace) whose own config has a filter
    for its .gitattributes, with a tracked file modified: asking whether its work tree is dirty
    means running ``git status`` inside it, which runs the filter."""
    inner = lab.workspace / "vendor" / "lib"
    inner.mkdir(parents=True)
    git("init", "-q", str(inner), cwd=lab.base)
    (inner / "lib.txt").write_text("v1\n")
    (inner / ".gitattributes").write_text("*.txt filter=x\n")
    git("add", "-A", cwd=inner)
    git("commit", "-qm", "lib", cwd=inner)
    git("add", "vendor/lib", cwd=lab.workspace)
    clean = lab.script("nested-filter-clean", "cat")
    git("config", "filter.x.clean", str(clean), cwd=inner)
    git("config", "core.fsmonitor", str(lab.script("nested-fsmonitor")), cwd=inner)
    (inner / "lib.txt").write_text("v2\n")


def decoy_got_the_push(lab: Lab) -> list[str]:
    refs = git("ls-remote", "--heads", str(lab.decoy), "work", cwd=lab.base)
    return ["decoy-received-push"] if refs else []


PLANTS: dict[str, tuple[Callable[[Lab], None], list[str] | None]] = {
    # name: (plant, markers the control run must fire; None: checked by decoy_got_the_push)
    "hooks": (plant_hooks, ["hook-post-commit", "hook-reference-transaction"]),
    "fsmonitor": (plant_fsmonitor, ["fsmonitor"]),
    "filter": (plant_filter, ["filter-clean"]),
    "diff-drivers": (plant_diff_drivers, ["diff-external"]),
    "include": (plant_include, ["include-fsmonitor"]),
    "uploadpack-receivepack": (plant_upload_receive_pack, ["receivepack", "uploadpack"]),
    "insteadof": (plant_insteadof, None),
    "nested-repository": (plant_nested_repository, ["nested-filter-clean"]),
}


def worker_ops(lab: Lab, base_sha: str) -> list[tuple[list[str], bool]]:
    """The git commands commit_and_push and prepare_workspace run: (args, must succeed)."""
    out = lab.base / "diff.patch"
    return [
        (["add", "--all"], True),
        (["diff", "--cached", "--quiet"], False),
        (["commit", "--quiet", "--no-verify", "--no-edit", "-m", "Planted"], True),
        (["diff", "--binary", f"--output={out}", base_sha, "HEAD"], True),
        (["diff", "--shortstat", base_sha, "HEAD"], True),
        (["diff", base_sha, "HEAD"], True),
        (["ls-remote", "--", lab.url, "refs/heads/work"], True),
        (["push", "--quiet", "--no-verify", "--", lab.url, "HEAD:refs/heads/work"], True),
        (["fetch", "--prune", "--no-tags", "--", lab.url, FETCH_REFSPEC], True),
    ]


def write_payload(lab: Lab) -> None:
    (lab.workspace / "data.txt").write_text("payload\n")
    (lab.workspace / "src").mkdir(exist_ok=True)
    (lab.workspace / "src" / "main.py").write_text("print('hi')\n")


@pytest.mark.parametrize("kind", list(PLANTS))
async def test_planted_programs_never_run_in_the_workers_git(
    lab: Lab, config: JobConfig, kind: str
) -> None:
    plant, _expected = PLANTS[kind]
    base_sha = git("rev-parse", "HEAD", cwd=lab.workspace)
    plant(lab)
    write_payload(lab)
    for args, must_succeed in worker_ops(lab, base_sha):
        result = await run_git(
            args, cwd=lab.workspace, config=config, check=must_succeed, extra_env=IDENTITY
        )
        assert result.exit_code == 0 or not must_succeed
    assert lab.fired() == [], f"planted programs ran: {lab.fired()}"
    assert decoy_got_the_push(lab) == []
    # The commit holds the files, unfiltered, and it reached the real remote.
    files = git("ls-tree", "-r", "--name-only", "refs/heads/work", cwd=lab.remote).split()
    assert {"data.txt", "src/main.py"} <= set(files)
    assert git("show", "refs/heads/work:data.txt", cwd=lab.remote) == "payload"
    if kind in ("filter", "diff-drivers"):
        assert ".gitattributes" in files


@pytest.mark.parametrize("kind", list(PLANTS))
def test_control_plain_git_runs_the_planted_programs(lab: Lab, kind: str) -> None:
    """Without the hardening the same commands run each plant: the attack is real."""
    plant, expected = PLANTS[kind]
    base_sha = git("rev-parse", "HEAD", cwd=lab.workspace)
    plant(lab)
    write_payload(lab)
    env = {**os.environ, **IDENTITY, "GIT_TERMINAL_PROMPT": "0"}
    for args, _must_succeed in worker_ops(lab, base_sha):
        subprocess.run(["git", *args], cwd=lab.workspace, env=env, capture_output=True, check=False)
    if expected is None:
        assert decoy_got_the_push(lab) == ["decoy-received-push"]
    else:
        assert set(expected) <= set(lab.fired()), lab.fired()


async def test_the_real_activities_run_no_planted_program(
    activity_env: RecordingEnvironment,
    jobs: JobActivities,
    config: JobConfig,
    tmp_path: Path,
) -> None:
    """Everything planted at once, then the worker's own git of a job: the agent step's
    checkpoint (add, commit, bundle, diff), commit_and_push (ls-remote, push) and a second
    prepare_workspace (fetch, checkout, clean)."""
    remote = make_bare_repo(tmp_path, name="real")
    url = f"file://{remote}"
    job = job_spec("wo-plant-all", url)
    ws = await activity_env.run(jobs.prepare_workspace, PrepareWorkspaceInput(job=job))
    workspace = jobs.workspaces.path_for(job.work_order_id)
    lab = Lab(
        tmp_path,
        remote,
        url,
        make_bare_repo(tmp_path, name="decoy"),
        workspace,
        tmp_path / "markers",
        tmp_path / "plant",
    )
    lab.markers.mkdir()
    lab.plant.mkdir()
    # The nested repository first: planting it runs plain git in the workspace (other plants'
    # hooks would fire during the set-up, not during the worker's commands).
    for kind in sorted(PLANTS, key=lambda kind: kind != "nested-repository"):
        PLANTS[kind][0](lab)
    write_payload(lab)
    checkpoint = await jobs.workspaces.checkpoint(
        workspace, ws.state, message="All", committed_at_ms=1_764_000_000_000
    )
    assert checkpoint.files_changed >= 3
    result = await activity_env.run(
        jobs.commit_and_push,
        CommitAndPushInput(state=checkpoint.state, remote_branch_sha=ws.remote_branch_sha),
    )
    assert result.pushed
    again = await activity_env.run(jobs.prepare_workspace, PrepareWorkspaceInput(job=job))
    assert again.reused
    assert lab.fired() == [], f"planted programs ran: {lab.fired()}"
    assert decoy_got_the_push(lab) == []
    repo_config = read(workspace / ".git" / "config")
    assert "fsmonitor" not in repo_config and "include" not in repo_config
    assert "filter" not in repo_config
    assert f"url = {url}" in repo_config or f'url = "{url}"' in repo_config


async def test_alternates_into_another_repository_are_removed(lab: Lab, config: JobConfig) -> None:
    other = lab.base / "other-job"
    git("init", "-q", str(other), cwd=lab.base)
    (other / "secret.txt").write_text("another job's secret\n")
    git("add", "-A", cwd=other)
    git("commit", "-qm", "secret", cwd=other)
    secret_sha = git("rev-parse", "HEAD", cwd=other)
    alternates = lab.workspace / ".git" / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(f"{other / '.git' / 'objects'}\n")
    assert git("cat-file", "-t", secret_sha, cwd=lab.workspace) == "commit"  # control
    found = await run_git(
        ["cat-file", "-e", secret_sha], cwd=lab.workspace, config=config, check=False
    )
    assert found.exit_code != 0 and not exists(alternates)


async def test_a_git_dir_pointing_elsewhere_is_refused(lab: Lab, config: JobConfig) -> None:
    other = lab.base / "other-workspace"
    git("init", "-q", str(other), cwd=lab.base)
    git_dir = lab.workspace / ".git"
    (lab.base / "moved.git").mkdir()
    git_dir.rename(lab.base / "moved.git" / "git")
    git_dir.write_text(f"gitdir: {other / '.git'}\n")
    with pytest.raises(ApplicationError) as info:
        await run_git(["add", "--all"], cwd=lab.workspace, config=config)
    assert info.value.type == UNSAFE_WORKSPACE and info.value.non_retryable

    git_dir.unlink()
    (lab.base / "moved.git" / "git").rename(git_dir)
    (git_dir / "commondir").write_text(str(other / ".git") + "\n")
    with pytest.raises(ApplicationError) as info:
        await run_git(["status"], cwd=lab.workspace, config=config)
    assert info.value.type == UNSAFE_WORKSPACE


async def test_a_symlinked_config_is_replaced_never_written_through(
    lab: Lab, config: JobConfig
) -> None:
    target = lab.base / "worker-file.cfg"
    target.write_text("[core]\n\tfsmonitor = /bin/false\n")
    repo_config = lab.workspace / ".git" / "config"
    repo_config.unlink()
    repo_config.symlink_to(target)
    report = await sanitize_repository(lab.workspace)
    assert report.removed_files and not repo_config.is_symlink()
    assert read(repo_config) == MINIMAL_CONFIG
    assert read(target) == "[core]\n\tfsmonitor = /bin/false\n"
    assert (await run_git(["status"], cwd=lab.workspace, config=config)).exit_code == 0


async def test_a_clean_config_is_left_alone(lab: Lab) -> None:
    config = lab.workspace / ".git" / "config"
    first = await sanitize_repository(lab.workspace)  # a clone's branch.main.* is not ours
    assert set(first.removed_keys) == {"branch.main.remote", "branch.main.merge"}
    before = read(config)
    stamp = config.stat().st_mtime_ns
    assert not await sanitize_repository(lab.workspace)
    assert read(config) == before and config.stat().st_mtime_ns == stamp


def test_rendered_config_reads_back_identically(tmp_path: Path) -> None:
    entries: list[tuple[str, str | None]] = [
        ("core.repositoryformatversion", "0"),
        ("core.bare", None),
        ('remote.we"ird\\name.url', 'C:\\path "quoted"\twith tab'),
        ('remote.we"ird\\name.fetch', "+refs/heads/*:refs/remotes/origin/*"),
        ("remote.origin.url", "https://example.test/o/r.git"),
        ("remote.origin.fetch", "+refs/heads/a:refs/remotes/origin/a"),
        ("remote.origin.fetch", "+refs/heads/b:refs/remotes/origin/b"),
    ]
    path = tmp_path / "config"
    path.write_text(render_config(entries))
    listed = subprocess.run(
        ["git", "config", "--file", str(path), "--list", "-z"],
        capture_output=True,
        check=True,
    ).stdout
    assert parse_list_z(listed) == entries


def test_hardening_arguments_cover_the_executors() -> None:
    joined = " ".join(hardening_args())
    for needle in (
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
        "protocol.allow=never",
        "protocol.ext.allow=never",
        "credential.helper=",
        "gc.auto=0",
        "submodule.recurse=false",
    ):
        assert needle in joined


async def test_a_nested_repository_pointing_at_another_repository_is_refused(
    lab: Lab, config: JobConfig
) -> None:
    other = lab.base / "other-job"
    git("init", "-q", str(other), cwd=lab.base)
    git("commit", "-q", "--allow-empty", "-m", "other", cwd=other)
    inner = lab.workspace / "vendor"
    inner.mkdir()
    git("init", "-q", str(inner), cwd=lab.base)
    git("commit", "-q", "--allow-empty", "-m", "inner", cwd=inner)
    git("add", "vendor", cwd=lab.workspace)  # recorded as a gitlink
    shutil.rmtree(inner / ".git")
    (inner / ".git").write_text(f"gitdir: {other / '.git'}\n")
    with pytest.raises(ApplicationError) as info:
        await run_git(["add", "--all"], cwd=lab.workspace, config=config)
    assert info.value.type == UNSAFE_WORKSPACE and "modules" in str(info.value)
