"""Inputs and outputs of the job activities (workspace, agent, checks, git, pull request).

They travel through temporalio's pydantic data converter, so every field is JSON-friendly
(str, int, float, bool, tuples of models). Models are frozen and refuse unknown fields. Inputs
validate what they can without I/O (they are built in workflow code too); whatever needs the
worker's disk (does the local repository exist, is the workspace there) is checked by the
activity. Validation errors say what is accepted and never echo the value
(``hide_input_in_errors``): a repository URL may carry a token.

Results are self-contained: each says how it is recorded (``step_record()``: the step's status,
its payload as Convex stores it, its log URL), so the workflow records a step without building
payloads itself. Durations are whole milliseconds, like Convex's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from activities.contract import (
    MAX_BRANCH_LENGTH,
    MAX_CHECKS,
    MAX_PROMPT_CHARS,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
)
from activities.persistence_models import StepStatus
from activities.repo_url import classify_repo

# The most progress summaries an AgentResult carries (the first few and the latest ones).
MAX_PROGRESS = 50
MAX_AGENT_TIMEOUT_SECONDS = 24 * 3600.0
MAX_CHECK_TIMEOUT_SECONDS = 24 * 3600.0

_WORK_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def check_branch_name(name: str) -> str:
    """``name`` if git accepts it as a branch name (``git check-ref-format --branch``).

    The same rules, checked without running git: no component starts with '.' or ends with
    '.lock'; no '..', '@{', '//', backslash, space, control character or any of ``~^:?*[``;
    not starting with '-' or '/', not ending with '/' or '.', not '@' or 'HEAD'.
    """
    if not name:
        raise ValueError("branch name is empty")
    problems: list[str] = []
    if len(name) > MAX_BRANCH_LENGTH:
        problems.append(f"is longer than {MAX_BRANCH_LENGTH} characters")
    if name.startswith("-"):
        problems.append("starts with '-'")
    if name in ("@", "HEAD"):
        problems.append(f"is {name!r}, which git reserves")
    if name.startswith("/") or name.endswith("/"):
        problems.append("starts or ends with '/'")
    if name.endswith("."):
        problems.append("ends with '.'")
    problems.extend(f"contains {bad!r}" for bad in ("..", "@{", "//") if bad in name)
    bad_chars = sorted({ch for ch in name if ch in " ~^:?*[\\" or ord(ch) < 32 or ord(ch) == 127})
    if bad_chars:
        problems.append(f"contains {''.join(bad_chars)!r}")
    for part in name.split("/"):
        if part.startswith("."):
            problems.append(f"has a component starting with '.' ({part!r})")
        if part.endswith(".lock"):
            problems.append(f"has a component ending with '.lock' ({part!r})")
    if problems:
        raise ValueError(
            f"invalid git branch name {name!r}: it "
            + "; it ".join(problems)
            + " (the rules of `git check-ref-format --branch`)"
        )
    return name


def _check_workspace(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("workspace must be the absolute path prepare_workspace returned")
    return value


def _check_repo(value: str) -> str:
    classify_repo(value)
    return value


def _check_text(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(f"{what} is blank")
        if "\x00" in value:
            raise ValueError(f"{what} contains a NUL character")
        return value

    return check


def _optional_branch(value: str | None) -> str | None:
    return None if value is None else check_branch_name(value)


class JobModel(BaseModel):
    """Base: frozen, unknown fields refused, inputs never echoed in validation errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class StepRecord(BaseModel):
    """How a finished step is recorded in Convex: its status, its payload and its log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: StepStatus
    payload: dict[str, Any] | None = None
    log_url: str | None = None


class HasStepRecord(Protocol):
    """A job activity's result: it knows how its step is recorded."""

    def step_record(self) -> StepRecord: ...


class Payload(BaseModel):
    """Base of a step payload: snake_case here, the camelCase Convex column style when stored."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    def dump(self) -> dict[str, Any]:
        """The payload as stored: camelCase keys; optional fields left at their default are
        left out, required ones are kept even when None (a timed-out check's exit code)."""
        return self.model_dump(by_alias=True, exclude_defaults=True)


WorkspacePath = Annotated[str, Field(min_length=2, max_length=4096)]
Repo = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]
PR_TITLE_LENGTH = 256
"""GitHub's limit on a pull request title; a longer job title is cut to it."""


# --- prepare_workspace ----------------------------------------------------------------------


class PrepareWorkspaceInput(JobModel):
    """Clone or refresh ``repo`` into ``<data_dir>/workspaces/<work_order_id>``."""

    work_order_id: str = Field(description="The work order's id; names the workspace directory.")
    repo: Repo = Field(description="Where to clone from; forms in activities.repo_url.")
    base_branch: str | None = Field(
        default=None, description="Branch to start from; None: the remote's default branch."
    )
    branch: str | None = Field(
        default=None, description="Work branch (the branch hint); None: codex/<work_order_id>."
    )

    @field_validator("work_order_id")
    @classmethod
    def _work_order_id(cls, value: str) -> str:
        if not _WORK_ORDER_ID.match(value):
            raise ValueError(
                "work_order_id must be 1-128 letters, digits, '_' or '-', starting with a letter"
                " or digit (it names a directory and the default branch)"
            )
        return value

    _repo = field_validator("repo")(_check_repo)
    _branches = field_validator("base_branch", "branch")(_optional_branch)

    @model_validator(mode="after")
    def _distinct(self) -> PrepareWorkspaceInput:
        if self.base_branch is not None and self.base_branch == self.work_branch:
            raise ValueError(f"the work branch {self.work_branch!r} is also the base branch")
        return self

    @property
    def work_branch(self) -> str:
        """The branch the job works on: ``branch``, else ``codex/<work_order_id>``."""
        return self.branch or f"codex/{self.work_order_id}"


class Workspace(JobModel):
    """The prepared workspace: what every later job activity works in."""

    path: str = Field(description="Absolute path of the checked-out workspace.")
    branch: str = Field(description="The work branch, checked out at base_sha.")
    base_branch: str = Field(description="The base branch (given, or the remote's default).")
    base_sha: str = Field(description="Full sha of the base branch tip the branch starts at.")
    repo: str = Field(description="The repository location with credentials removed.")
    reused: bool = Field(description="True when an earlier attempt's workspace was refreshed.")
    task_queue: str | None = Field(
        default=None,
        description="The preparing worker's own task queue: the workspace lives on that worker, "
        "so the job's later workspace activities are routed there. None: the job's own queue.",
    )

    def step_record(self) -> StepRecord:
        return StepRecord(
            status="succeeded",
            payload=WorkspacePayload(branch=self.branch, base_sha=self.base_sha).dump(),
        )


class WorkspacePayload(Payload):
    """``prepare_workspace``'s step payload."""

    branch: str
    base_sha: str


# --- run_agent ------------------------------------------------------------------------------


class RunAgentInput(JobModel):
    """Run the agent command (JobConfig.codex_command, then the prompt) in the workspace."""

    workspace: WorkspacePath
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_AGENT_TIMEOUT_SECONDS,
        description="Time limit; None: JobConfig.agent_timeout_seconds.",
    )

    _workspace = field_validator("workspace")(_check_workspace)
    _prompt = field_validator("prompt")(_check_text("prompt"))


AgentOutcome = Literal["succeeded", "failed", "timed_out"]


class AgentProgress(JobModel):
    """One summarised Codex JSON event. ``seq`` is the event's index among the agent's JSON
    lines: stable for a given output, so the workflow may derive idempotency keys from it."""

    seq: int = Field(ge=0)
    type: str = Field(description="Codex event type: thread.started, item.completed, ...")
    item_type: str | None = Field(default=None, description="For item.*: agent_message, ...")
    summary: str = Field(max_length=400)


class AgentUsage(JobModel):
    """Token usage summed over the agent's ``turn.completed`` events."""

    input_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)


class AgentResult(JobModel):
    """How the agent run ended. A failed or timed-out agent is a result, not an exception."""

    outcome: AgentOutcome
    succeeded: bool
    exit_code: int | None = Field(
        description="The exit code; negative: killed by that signal; None: timed out."
    )
    timed_out: bool
    failure_reason: str | None = Field(default=None, max_length=2000)
    log_path: str
    log_url: str
    progress: tuple[AgentProgress, ...] = Field(max_length=MAX_PROGRESS)
    progress_dropped: int = Field(ge=0, description="Summaries left out to respect the bound.")
    lines: int = Field(ge=0, description="Output lines seen, stdout and stderr.")
    json_events: int = Field(ge=0, description="Lines that parsed as Codex JSON events.")
    thread_id: str | None = None
    final_message: str | None = Field(
        default=None, max_length=4000, description="The last agent_message text, truncated."
    )
    usage: AgentUsage | None = None
    duration_ms: int = Field(ge=0)

    def step_record(self) -> StepRecord:
        payload = AgentPayload(
            outcome=self.outcome,
            exit_code=self.exit_code,
            duration_ms=self.duration_ms,
            lines=self.lines,
            json_events=self.json_events,
            final_message=self.final_message[:2000] if self.final_message else None,
            message=self.failure_reason,
        )
        return StepRecord(
            status="succeeded" if self.succeeded else "failed",
            payload=payload.dump(),
            log_url=self.log_url,
        )


class AgentPayload(Payload):
    """``run_agent``'s step payload; ``message`` says why it failed."""

    outcome: AgentOutcome
    exit_code: int | None
    duration_ms: int
    lines: int
    json_events: int
    final_message: str | None = None
    message: str | None = None


# --- run_check ------------------------------------------------------------------------------


class RunCheckInput(JobModel):
    """Run one check command (a shell string, ``/bin/sh -c``) in the workspace."""

    workspace: WorkspacePath
    command: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    index: int = Field(
        ge=0, le=MAX_CHECKS, description="Position in the check list; names the log."
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_CHECK_TIMEOUT_SECONDS,
        description="Time limit; None: JobConfig.check_timeout_seconds.",
    )

    _workspace = field_validator("workspace")(_check_workspace)
    _command = field_validator("command")(_check_text("check command"))


class CheckResult(JobModel):
    """One check's outcome; a failing or timed-out check is a result, not an exception."""

    index: int
    command: str
    passed: bool
    exit_code: int | None = Field(description="None: timed out; negative: killed by a signal.")
    timed_out: bool
    duration_ms: int = Field(ge=0)
    log_path: str
    log_url: str
    output_tail: str = Field(max_length=4000, description="The last lines of output.")

    def step_record(self) -> StepRecord:
        payload = CheckPayload(
            command=self.command,
            exit_code=self.exit_code,
            timed_out=self.timed_out,
            duration_ms=self.duration_ms,
            output_tail=None if self.passed else self.output_tail[-1000:],
        )
        return StepRecord(
            status="succeeded" if self.passed else "failed",
            payload=payload.dump(),
            log_url=self.log_url,
        )


class CheckPayload(Payload):
    """A check step's payload; the output's tail only when it failed."""

    command: str
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    output_tail: str | None = None


# --- commit_and_push ------------------------------------------------------------------------


class CommitAndPushInput(JobModel):
    """Commit everything the agent changed on ``branch`` and push the branch to origin."""

    workspace: WorkspacePath
    repo: Repo = Field(description="The work order's repo, as given to prepare_workspace.")
    branch: str
    base_sha: str = Field(description="Workspace.base_sha: where the diff starts.")
    message: str = Field(min_length=1, max_length=20_000, description="The commit message.")

    _workspace = field_validator("workspace")(_check_workspace)
    _repo = field_validator("repo")(_check_repo)
    _message = field_validator("message")(_check_text("commit message"))

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return check_branch_name(value)

    @field_validator("base_sha")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA.match(value):
            raise ValueError("base_sha must be a full lower-case commit sha (40 hex digits)")
        return value


class CaptureDiffInput(JobModel):
    """Input of ``capture_diff``: the workspace and the base its diff starts from."""

    workspace: WorkspacePath
    base_sha: str = Field(min_length=4, max_length=64, description="Workspace.base_sha.")


class DiffResult(JobModel):
    """A diff written to the artifact store (``capture_diff``)."""

    changed: bool
    diff_path: str
    diff_url: str
    files_changed: int = Field(ge=0)
    insertions: int = Field(ge=0)
    deletions: int = Field(ge=0)


class CommitResult(JobModel):
    """What was committed and pushed; ``changed=False`` is the clear "nothing to do" outcome."""

    changed: bool = Field(description="False: the agent changed nothing; nothing was pushed.")
    reason: str | None = Field(default=None, description="Why nothing was committed, if so.")
    committed: bool = Field(description="This attempt made the commit (False on a retry).")
    pushed: bool
    branch: str
    base_sha: str
    commit_sha: str | None = Field(description="HEAD after the commit; None when unchanged.")
    diff_path: str | None
    diff_url: str | None
    files_changed: int = Field(ge=0)
    insertions: int = Field(ge=0)
    deletions: int = Field(ge=0)

    def step_record(self) -> StepRecord:
        payload = CommitPayload(
            changed=self.changed,
            commit_sha=self.commit_sha,
            files_changed=self.files_changed,
            reason=self.reason,
        )
        return StepRecord(status="succeeded", payload=payload.dump())


class CommitPayload(Payload):
    """``commit_and_push``'s step payload; ``reason`` says why nothing was committed."""

    changed: bool
    commit_sha: str | None
    files_changed: int
    reason: str | None = None


# --- open_pull_request ----------------------------------------------------------------------


class OpenPullRequestInput(JobModel):
    """Find or create the open pull request ``branch`` -> ``base_branch`` on GitHub."""

    repo: Repo = Field(description="The work order's repo (origin's URL).")
    branch: str = Field(description="The pushed work branch (the PR's head).")
    base_branch: str
    title: str = Field(min_length=1, max_length=PR_TITLE_LENGTH)
    body: str = Field(default="", max_length=60_000)
    draft: bool = False

    _repo = field_validator("repo")(_check_repo)
    _title = field_validator("title")(_check_text("pull request title"))

    @field_validator("branch", "base_branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return check_branch_name(value)


class PullRequestResult(JobModel):
    """The pull request, or why there is none (``skipped``: no token, or not on GitHub)."""

    skipped: bool
    reason: str | None = None
    url: str | None = Field(default=None, description="The pull request's html_url.")
    number: int | None = None
    created: bool = Field(default=False, description="False when an open one already existed.")
    repository: str | None = Field(default=None, description="owner/name on GitHub.")

    def step_record(self) -> StepRecord:
        if self.skipped:
            return StepRecord(status="skipped", payload={"reason": self.reason})
        payload = PullRequestPayload(url=self.url, number=self.number, created=self.created)
        return StepRecord(status="succeeded", payload=payload.dump())


class PullRequestPayload(Payload):
    """``open_pull_request``'s step payload."""

    url: str | None
    number: int | None
    created: bool
