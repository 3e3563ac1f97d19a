"""The job's input, its result and what the progress query returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]


class JobLimits(BaseModel):
    """Time limits of one job; the worker's defaults apply when the work order gives none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_timeout_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600)
    check_timeout_seconds: float = Field(default=1800.0, gt=0, le=24 * 3600)
    git_timeout_seconds: float = Field(default=600.0, gt=0, le=6 * 3600)


class CodexJobInput(BaseModel):
    """A work order as the workflow needs it: everything is resolved before the job starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    work_order_id: str = Field(min_length=1, max_length=256)
    session_id: str | None = None
    repo: str = Field(min_length=1, max_length=2048)
    base_branch: str | None = Field(default=None, max_length=255)
    branch_hint: str | None = Field(default=None, max_length=255)
    prompt: str = Field(min_length=1, max_length=100_000)
    title: str = Field(default="Codex job", min_length=1, max_length=300)
    checks: list[str] = Field(default_factory=list, max_length=50)
    limits: JobLimits = Field(default_factory=JobLimits)


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
    failure_reason: dict[str, Any] | None = None
