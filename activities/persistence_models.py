"""Inputs and outputs of the persistence activities, one model per Convex writer.

Fields are snake_case in Python and in Temporal payloads; ``convex_args()`` renames them to the
seed's camelCase column names, so the activity sends exactly what the Convex validators expect.
Idempotency keys and timestamps are chosen by the workflow (deterministically), never here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from activities.contract import (
    MAX_BRANCH_LENGTH,
    MAX_EVENT_BATCH,
    MAX_ID_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    ArtifactType,
    EventType,
    StepKind,
    StepStatus,
)
from activities.contract import WorkStatus as RunStatus

__all__ = ["ArtifactType", "EventType", "RunStatus", "StepKind", "StepStatus"]

_ID = Field(min_length=1, max_length=MAX_ID_LENGTH)


class ConvexArgs(BaseModel):
    """Base: frozen, unknown fields refused, camelCase on the way to Convex."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    def convex_args(self) -> dict[str, Any]:
        """The Convex function's arguments: camelCase names, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class RunStart(ConvexArgs):
    """Arguments of ``runs:start``; the worker id is filled in by the activity's worker."""

    workflow_request_id: str = _ID
    temporal_workflow_id: str = _ID
    temporal_run_id: str = _ID
    task_queue: str = _ID
    worker_id: str | None = None
    repo: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    branch: str = Field(min_length=1, max_length=MAX_BRANCH_LENGTH)
    started_at: float = Field(ge=0)


class StepUpdate(ConvexArgs):
    """Arguments of ``steps:appendOrUpdate`` (it writes the step's state_change event too)."""

    run_id: str = _ID
    name: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    kind: StepKind
    status: StepStatus
    started_at: float | None = Field(default=None, ge=0)
    ended_at: float | None = Field(default=None, ge=0)
    payload: dict[str, Any] | None = None
    log_storage_id: str | None = Field(default=None, description="The step's log in storage.")
    checkpoint_storage_id: str | None = Field(
        default=None, description="The workspace checkpoint the step left, in storage."
    )
    attempts: int | None = Field(default=None, ge=1)


class StepResult(BaseModel):
    """What ``steps:appendOrUpdate`` answered: the status stored, and whether this call moved it."""

    step_id: str
    status: StepStatus
    changed: bool


class ArtifactAdd(ConvexArgs):
    """Arguments of ``artifacts:add``: a URL (a pull request) or a file in Convex storage."""

    run_id: str = _ID
    type: ArtifactType
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    storage_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    label: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    idempotency_key: str = Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    created_at: float | None = Field(default=None, ge=0)


class NewEvent(ConvexArgs):
    """One event of an ``events:appendBatch`` call."""

    type: EventType
    data: dict[str, Any] | None = None
    idempotency_key: str = Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    created_at: float | None = Field(default=None, ge=0)


class EventAppend(NewEvent):
    """Arguments of ``events:append``: one event and the run it belongs to."""

    run_id: str = _ID
    workflow_request_id: str = _ID


class EventBatch(ConvexArgs):
    """Arguments of ``events:appendBatch``: events of one run, each deduplicated on its key."""

    run_id: str = _ID
    workflow_request_id: str = _ID
    events: tuple[NewEvent, ...] = Field(max_length=MAX_EVENT_BATCH)


class RunUsage(ConvexArgs):
    """The agent's token usage over the run (``runs:updateStatus``'s ``usage``)."""

    input_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class RunStatusUpdate(ConvexArgs):
    """Arguments of ``runs:updateStatus`` (it writes the run's state_change event too)."""

    run_id: str = _ID
    status: RunStatus
    ended_at: float | None = Field(default=None, ge=0)
    failure_reason: dict[str, Any] | None = None
    pr_url: str | None = None
    commit_sha: str | None = None
    usage: RunUsage | None = None
    agent_ms: int | None = Field(default=None, ge=0)
    final_message: str | None = Field(default=None, max_length=4000)


class RejectWorkOrder(ConvexArgs):
    """Arguments of ``workOrders:reject``: an order the job cannot run fails with the reason."""

    workflow_request_id: str = _ID
    reason: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)


class RunStatusResult(BaseModel):
    """What ``runs:updateStatus`` answered."""

    run_id: str
    status: RunStatus
    changed: bool
