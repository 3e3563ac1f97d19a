"""The job's input, its result and what the progress query returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.contract import WorkStatus as JobStatus

__all__ = [
    "CodexJobInput",
    "CodexJobResult",
    "JobProgress",
    "JobStatus",
    "records_task_queue",
]


def records_task_queue(task_queue: str) -> str:
    """The task queue of a job's Convex records: beside the job's own, polled by the same
    workers with their own activity slots, so a stuck Convex call never holds a job step's."""
    return f"{task_queue}-records"


class CodexJobInput(BaseModel):
    """A work order to run. Everything else (the prompt, the repository's checks, the limits)
    is read when the job starts, by the worker that runs it (``JobActivities.load_job``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    work_order_id: str = Field(min_length=1, max_length=128)


class JobProgress(BaseModel):
    """What the ``progress`` query answers while the job runs."""

    status: JobStatus
    current_step: str | None
    run_id: str | None
    steps_done: list[str]


class CodexJobResult(BaseModel):
    """The job's outcome, mirrored in Convex as the run's final status."""

    run_id: str
    status: JobStatus
    branch: str | None = None
    commit_sha: str | None = None
    pr_url: str | None = None
    pr_number: int | None = None
    failure_reason: dict[str, Any] | None = None
