"""Real git for tests: one ``git`` runner and one way to make a bare "remote" with a commit.

Commits made by the tests themselves carry a fixed identity, so the tests do not depend on the
machine's ~/.gitconfig (a fresh CI machine has none).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Seed",
    "GIT_AUTHOR_EMAIL": "seed@example.test",
    "GIT_COMMITTER_NAME": "Test Seed",
    "GIT_COMMITTER_EMAIL": "seed@example.test",
}


def git(*args: str, cwd: Path) -> str:
    """Run git, returning stdout; fails the test on a non-zero exit."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def make_bare_repo(base: Path, name: str = "origin", default_branch: str = "main") -> Path:
    """A bare repository ``<base>/<name>.git`` with one commit (README.md) on ``default_branch``."""
    seed = base / f"{name}-seed"
    seed.mkdir(parents=True)
    (seed / "README.md").write_text("# Sample\n")
    git("init", "-q", "-b", default_branch, cwd=seed)
    git("add", "-A", cwd=seed)
    git("commit", "-qm", "initial commit", cwd=seed)
    bare = base / f"{name}.git"
    git("clone", "-q", "--bare", str(seed), str(bare), cwd=base)
    return bare
