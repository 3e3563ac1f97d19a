"""A second worker process for the repository cache tests.

``python -m tests.activities.repo_cache_child SPEC_JSON`` waits until the file ``spec["go"]``
exists (so that two children start together), makes one workspace with
:meth:`activities.repo_cache.RepoCache.make_workspace` in the cache at ``spec["root"]``, and
prints ``{"inits": <mirror clones this process made>, "head": <sha>, "reused": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from activities.config import JobConfig
from activities.gitcli import GitOutput
from activities.gitrunner import git_runner
from activities.repo_cache import RepoCache


def _exists(path: str) -> bool:
    return os.path.exists(path)


async def _main(spec: dict[str, Any]) -> int:
    config = JobConfig(
        data_dir=Path(spec["data_dir"]), git_timeout_seconds=60.0, allow_local_repos=True
    )
    inner = git_runner(config)
    inits = 0

    async def counting(args: Sequence[str], *, cwd: Path, **kwargs: Any) -> GitOutput:
        nonlocal inits
        if list(args[:2]) == ["init", "--bare"]:
            inits += 1
        return await inner(args, cwd=cwd, **kwargs)

    cache = RepoCache(Path(spec["root"]), max_bytes=10**12, git=counting)
    go = spec["go"]
    # Everything imported and built: only the wait is left.
    await asyncio.to_thread(Path(spec["ready"]).write_text, "ready")
    deadline = time.monotonic() + 30
    while not _exists(go):
        if time.monotonic() > deadline:
            return 2
        await asyncio.sleep(0.01)
    made = await cache.make_workspace(
        spec["repo"], Path(spec["path"]), start_sha=spec["sha"], branch=spec["branch"]
    )
    head = await inner(["rev-parse", "HEAD"], cwd=Path(made.path))
    print(json.dumps({"inits": inits, "head": head.stdout.strip(), "reused": made.reused}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(json.loads(sys.argv[1]))))
