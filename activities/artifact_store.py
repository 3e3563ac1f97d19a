"""Where job logs and diffs live, and the URL recorded in Convex for each file.

Layout, under ``JobConfig.data_dir`` (``JANGAR_DATA_DIR``, default ``.jangar`` in the worker's
working directory, made absolute)::

    <data_dir>/artifacts/<workflow id>/<run id>/agent.log
    <data_dir>/artifacts/<workflow id>/<run id>/checks/check-<index>.log
    <data_dir>/artifacts/<workflow id>/<run id>/diff.patch

The workflow id and run id are the Temporal ones of the workflow that ran the activity (from
``activity.info()``), so every run keeps its own files and a retried activity overwrites its
own earlier attempt rather than adding a second file.

The URL recorded for a file:

- by default ``file://`` + the absolute path (``Path.as_uri()``): right for a single machine
  and for tests;
- when ``JANGAR_ARTIFACT_BASE_URL`` is set (say ``https://artifacts.example/jangar``), that base
  + ``/`` + the path relative to ``<data_dir>/artifacts`` (percent-encoded). Serving or
  syncing the directory to that address (a static file server, a bucket sync) is the
  operator's job.

URLs never carry credentials: the worker's settings refuse a base URL with a user part, and path
segments come from Temporal ids and fixed names, never from repository URLs.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from activities.config import JobConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _segment(value: str) -> str:
    """A path segment from an id: unsafe characters become '_', never '.' or '..'."""
    cleaned = _UNSAFE.sub("_", value)[:200]
    return cleaned if cleaned.strip(".") else "_"


class ArtifactStore:
    """Paths and URLs for the files a job run leaves behind."""

    def __init__(self, root: Path, base_url: str | None = None) -> None:
        self.root = root.expanduser().resolve()
        self.base_url = base_url.rstrip("/") if base_url else None

    @classmethod
    def for_jobs(cls, config: JobConfig) -> ArtifactStore:
        """The store under the jobs' data directory, with their public base URL."""
        return cls(config.artifacts_root, config.artifact_base_url)

    def run_dir(self, workflow_id: str, run_id: str) -> Path:
        """The directory of one workflow run's files (not created)."""
        return self.root / _segment(workflow_id) / _segment(run_id)

    def path_for(self, workflow_id: str, run_id: str, name: str) -> Path:
        """The file ``name`` (a relative posix path of fixed names) of a run; parents created."""
        relative = PurePosixPath(name)
        if relative.is_absolute() or any(part in ("", ".", "..") for part in relative.parts):
            raise ValueError(f"artifact name must be a plain relative path, got {name!r}")
        path = self.run_dir(workflow_id, run_id).joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def url_for(self, path: Path) -> str:
        """The URL recorded for a file inside the store."""
        resolved = path.resolve()
        relative = resolved.relative_to(self.root)  # ValueError for a file outside the store
        if self.base_url is None:
            return resolved.as_uri()
        return f"{self.base_url}/{quote(relative.as_posix())}"
