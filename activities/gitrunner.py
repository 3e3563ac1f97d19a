"""``GitRunner``: how library code that is not itself an activity runs git.

:mod:`activities.repo_cache` and :mod:`activities.checkpoint` take a ``GitRunner`` instead of a
:class:`~activities.config.JobConfig`: they never need the rest of the job configuration, and a
test can wrap the runner to count or inspect the commands. In the worker it is always
:func:`git_runner`, i.e. :func:`activities.gitcli.run_git` (hardened against the workspace by
:mod:`activities.gitsafe`, errors typed for Temporal) bound to the job's config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from activities.config import JobConfig
from activities.gitcli import GitOutput, run_git


class GitRunner(Protocol):
    """Runs ``git <args>`` in ``cwd`` like :func:`activities.gitcli.run_git` (same keywords,
    same meaning: ``remote`` is the URL the command talks to, ``check`` raises a typed
    ``ApplicationError`` on a non-zero exit)."""

    async def __call__(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        remote: str | None = None,
        time_limit: float | None = None,
        heartbeat: Callable[[], None] | None = None,
        check: bool = True,
        what: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> GitOutput: ...


def git_runner(config: JobConfig) -> GitRunner:
    """The worker's git runner: :func:`activities.gitcli.run_git` with ``config``."""
    return functools.partial(run_git, config=config)
