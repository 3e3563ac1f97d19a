"""Generated from convex/lib/contract.json (tools/contract.py, `make codegen`); do not edit."""

from typing import Final, Literal

WorkStatus = Literal[
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
]
WORK_STATUSES: Final[tuple[WorkStatus, ...]] = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
)

StepStatus = Literal[
    "pending",
    "running",
    "succeeded",
    "failed",
    "canceled",
    "skipped",
]
STEP_STATUSES: Final[tuple[StepStatus, ...]] = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "canceled",
    "skipped",
)

StepKind = Literal[
    "activity",
    "hook",
    "check",
]
STEP_KINDS: Final[tuple[StepKind, ...]] = (
    "activity",
    "hook",
    "check",
)

ArtifactType = Literal[
    "pr",
    "diff",
    "file",
    "log",
    "screenshot",
]
ARTIFACT_TYPES: Final[tuple[ArtifactType, ...]] = (
    "pr",
    "diff",
    "file",
    "log",
    "screenshot",
)

EventType = Literal[
    "state_change",
    "comment",
    "system",
]
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    "state_change",
    "comment",
    "system",
)

MessageRole = Literal[
    "user",
    "assistant",
    "system",
]
MESSAGE_ROLES: Final[tuple[MessageRole, ...]] = (
    "user",
    "assistant",
    "system",
)

ErrorCode = Literal[
    "NOT_FOUND",
    "INVALID_TRANSITION",
    "TOO_LARGE",
    "INVALID_ARGUMENT",
    "CONFLICT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
]
ERROR_CODES: Final[tuple[ErrorCode, ...]] = (
    "NOT_FOUND",
    "INVALID_TRANSITION",
    "TOO_LARGE",
    "INVALID_ARGUMENT",
    "CONFLICT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
)

MAX_ID_LENGTH: Final = 256
"""Longest id or short name: user, session, work order, worker, task queue, step name."""
MAX_BRANCH_LENGTH: Final = 200
"""Longest git branch name a job accepts (base branch or branch hint)."""
MAX_TEXT_LENGTH: Final = 4096
"""Longest title, summary, label, check command or failure text, in characters."""
MAX_URL_LENGTH: Final = 4096
"""Longest URL or repository location, in characters."""
MAX_PROMPT_CHARS: Final = 100000
"""Longest prompt a job runs, in characters (the trigger message's content)."""
MAX_JOB_TITLE_LENGTH: Final = 300
"""Longest job title (the pull request title); a longer summary is cut to it."""
MAX_CHECKS: Final = 50
"""Most check commands one job runs."""
MAX_EVENT_BATCH: Final = 100
"""Most events one events:appendBatch call writes."""
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 512
"""Longest idempotency key, in characters."""
MAX_VALUE_BYTES: Final = 65536
"""Largest serialized payload, data, metadata or failureReason, in bytes."""
MAX_CONTENT_BYTES: Final = 262144
"""Largest chat message content, in UTF-8 bytes."""
