"""The job's input, its result and what the progress query returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.contract import (
    MAX_BRANCH_LENGTH,
    MAX_CHECKS,
    MAX_ID_LENGTH,
    MAX_JOB_TITLE_LENGTH,
    MAX_PROMPT_CHARS,
    MAX_URL_LENGTH,
)
from activities.contract import WorkStatus as JobStatus

__all__ = ["CodexJobInput", "CodexJobResult", "JobLimits", "JobProgress", "JobStatus"]


class JobLimits(BaseModel):
    """Time limits of one job; the worker's defaults apply when the work order gives none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_timeout_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600)
    check_timeout_seconds: float = Field(default=1800.0, gt=0, le=24 * 3600)
    git_timeout_seconds: float = Field(default=600.0, gt=0, le=6 * 3600)


class CodexJobInput(BaseModel):
    """A work order as the workflow needs it: everything is resolved before the job starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    work_order_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    session_id: str | None = None
    repo: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    base_branch: str | None = Field(default=None, max_length=MAX_BRANCH_LENGTH)
    branch_hint: str | None = Field(default=None, max_length=MAX_BRANCH_LENGTH)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    title: str = Field(default="Codex job", min_length=1, max_length=MAX_JOB_TITLE_LENGTH)
    checks: list[str] = Field(default_factory=list, max_length=MAX_CHECKS)
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
