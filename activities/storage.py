"""Files the job keeps in Convex storage: logs, diffs and workspace checkpoints.

A file a job makes on a worker's disk is gone with that worker's pod. Uploading it to the
deployment's file storage (the same Convex that holds the run) makes it outlive the worker:
the artifact row points at the URL Convex serves, and any worker can fetch a checkpoint to
rebuild a workspace. Uploads ride out a Convex outage in place (backoff, heartbeating), so a
Convex blip after a 30-minute agent run costs a wait, not a rerun of the agent; an outage longer
than the patience fails the activity with the retryable ``ConvexUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import structlog
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.convex_client import ConvexClient, ConvexClientError, ConvexUnavailableError
from activities.models import StoredFile
from activities.persistence import CONVEX_UNAVAILABLE

log = structlog.stdlib.get_logger(__name__)

T = TypeVar("T")
Heartbeat = Callable[[], None]

STORAGE_UNAVAILABLE = CONVEX_UNAVAILABLE  # retryable: the same type as every Convex outage
STORAGE_REFUSED = "StorageRefused"  # non-retryable: Convex refused the file (too large, gone)


class SweepTotals(BaseModel):
    """What one worker's share of a sweep of Convex storage did (``files:sweep`` pages)."""

    pages: int = 0
    checked: int = 0
    released: int = 0
    """Checkpoint bundles of runs that have ended, deleted."""
    deleted: int = 0
    """Files no record named, older than the orphan age, deleted."""


class FileStore:
    """Put and get files in Convex storage through the process's one Convex client."""

    def __init__(
        self,
        convex: ConvexClient,
        *,
        patience_seconds: float = 600.0,
        max_backoff_seconds: float = 15.0,
    ) -> None:
        self._convex = convex
        self._patience = patience_seconds
        self._max_backoff = max_backoff_seconds

    async def _patiently(
        self, what: str, call: Callable[[], Awaitable[T]], heartbeat: Heartbeat | None
    ) -> T:
        """``call()``, retried with backoff while Convex is unavailable, up to the patience."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._patience
        delay = 0.5
        while True:
            try:
                return await call()
            except ConvexUnavailableError as exc:
                if loop.time() + delay > deadline:
                    raise ApplicationError(
                        f"{what}: Convex stayed unavailable for {self._patience:g} s: {exc}",
                        type=STORAGE_UNAVAILABLE,
                    ) from None
                log.warning("storage_retry", what=what, error=str(exc), retry_in=delay)
            except ConvexClientError as exc:
                raise ApplicationError(
                    f"{what}: {exc}", type=STORAGE_REFUSED, non_retryable=True
                ) from None
            if heartbeat is not None:
                heartbeat()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def put(
        self,
        path: Path,
        *,
        content_type: str,
        truncated: bool = False,
        heartbeat: Heartbeat | None = None,
    ) -> StoredFile:
        """Upload the file at ``path``; its storage id (a new file per call)."""
        data = await asyncio.to_thread(path.read_bytes)

        async def upload() -> str:
            url = await self._convex.mutation("files:generateUploadUrl", {})
            return await self._convex.upload(str(url), data, content_type=content_type)

        storage_id = await self._patiently(f"upload of {path.name}", upload, heartbeat)
        return StoredFile(storage_id=storage_id, bytes=len(data), truncated=truncated)

    async def get(self, storage_id: str, dest: Path, *, heartbeat: Heartbeat | None = None) -> Path:
        """Download the stored file ``storage_id`` to ``dest``."""

        async def download() -> bytes:
            url = await self._convex.query("files:getUrl", {"storageId": storage_id})
            if url is None:
                raise ApplicationError(
                    f"stored file {storage_id} no longer exists in Convex storage",
                    type=STORAGE_REFUSED,
                    non_retryable=True,
                )
            return await self._convex.download(str(url))

        data = await self._patiently(f"download of {storage_id}", download, heartbeat)
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(dest.write_bytes, data)
        return dest

    async def sweep(
        self, *, orphan_age_seconds: float, every_seconds: float, max_pages: int = 1000
    ) -> SweepTotals:
        """Remove stored files no record needs any more (``files:sweep``, page by page).

        The deployment keeps one pass's cursor, so every worker calling this shares the work
        and a pass runs at most once per ``every_seconds`` however many workers there are.
        Convex errors propagate: the caller tries again at its next sweep.
        """
        totals = SweepTotals()
        args = {"orphanAgeMs": orphan_age_seconds * 1000, "everyMs": every_seconds * 1000}
        while totals.pages < max_pages:
            page = await self._convex.mutation("files:sweep", args)
            if not page["due"]:
                break
            totals.pages += 1
            totals.checked += int(page["checked"])
            totals.released += int(page["released"])
            totals.deleted += int(page["deleted"])
            if page["passDone"]:
                break
        return totals
