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

A workspace is never bound to one worker: every workspace activity gets a ``WorkspaceState``
(the repository, the commit the tree must be at, and the checkpoint bundle in Convex storage
that holds that commit when it is the job's own) and rebuilds the tree from it wherever it runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activities.contract import (
    MAX_BRANCH_LENGTH,
    MAX_CHECKS,
    MAX_JOB_TITLE_LENGTH,
    MAX_PROMPT_CHARS,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
)
from activities.persistence_models import ConvexArgs, NewEvent, StepStatus
from activities.repo_url import classify_repo

# The most progress summaries an AgentResult carries (the first few and the latest ones).
MAX_AGENT_TIMEOUT_SECONDS = 24 * 3600.0
MAX_CHECK_TIMEOUT_SECONDS = 24 * 3600.0

_WORK_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
SHA_PATTERN = r"^[0-9a-f]{40}([0-9a-f]{24})?$"
"""A full commit id: SHA-1 (40 hex digits) or SHA-256 (64)."""
SHA_RE = re.compile(SHA_PATTERN)


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
    """How a finished step is recorded in Convex: its status, its payload, its attempts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: StepStatus
    payload: dict[str, Any] | None = None
    log_storage_id: str | None = None
    checkpoint_storage_id: str | None = Field(
        default=None,
        description="The checkpoint bundle later steps restore: kept until the run ends.",
    )
    attempts: int | None = None


class HasStepRecord(Protocol):
    """A job activity's result: it knows how its step is recorded."""

    def step_record(self) -> StepRecord: ...


class Payload(ConvexArgs):
    """Base of a step payload: snake_case here, the camelCase Convex column style when stored."""

    def dump(self) -> dict[str, Any]:
        """The payload as stored: camelCase keys; optional fields left at their default are
        left out, required ones are kept even when None (a timed-out check's exit code)."""
        return self.model_dump(by_alias=True, exclude_defaults=True)


Repo = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]
Sha = Annotated[str, Field(pattern=SHA_PATTERN)]
PR_TITLE_LENGTH = 256
"""GitHub's limit on a pull request title; a longer job title is cut to it."""


# --- the job, as load_job resolves it ---------------------------------------------------------


class JobLimits(JobModel):
    """Time limits and budgets of one job, from the worker's settings and the repository's
    registry entry (never from whoever submitted the order)."""

    agent_timeout_seconds: float = Field(default=3600.0, gt=0, le=MAX_AGENT_TIMEOUT_SECONDS)
    check_timeout_seconds: float = Field(default=1800.0, gt=0, le=MAX_CHECK_TIMEOUT_SECONDS)
    git_timeout_seconds: float = Field(default=600.0, gt=0, le=6 * 3600)
    heartbeat_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="A workspace step whose worker stops heartbeating this long is retried "
        "elsewhere, from its last checkpoint.",
    )
    max_tokens: int | None = Field(
        default=None, gt=0, description="Token budget of the run's agent (input + output)."
    )
    max_agent_seconds: float | None = Field(
        default=None, gt=0, description="Agent time budget of the run, over all its attempts."
    )


class NetworkPolicy(JobModel):
    """Which of the job's untrusted processes may reach the network (sandboxed)."""

    agent: bool = True
    checks: bool = False


class ParentRef(JobModel):
    """The earlier order a follow-up continues: its pushed branch head and pull request."""

    work_order_id: str
    branch: str
    commit_sha: Sha
    pr_number: int | None = None
    pr_url: str | None = None


class Exchange(JobModel):
    """One earlier request of the conversation and what the agent answered."""

    prompt: str = Field(max_length=MAX_PROMPT_CHARS)
    final_message: str | None = Field(default=None, max_length=4000)


class LoadJobInput(JobModel):
    """Resolve the work order ``work_order_id`` into the job to run."""

    work_order_id: str = Field(min_length=1, max_length=128)


class JobSpec(JobModel):
    """Everything the job needs, validated once, at its start: the order, its registry entry
    (checks, network, budgets, webhook) and the running worker's limits."""

    work_order_id: str
    session_id: str | None = None
    repo: Repo
    base_branch: str | None = Field(
        default=None, description="Branch to start from; None: the remote's default branch."
    )
    branch: str = Field(description="The work branch.")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    title: str = Field(min_length=1, max_length=MAX_JOB_TITLE_LENGTH)
    checks: tuple[str, ...] = Field(default=(), max_length=MAX_CHECKS)
    limits: JobLimits = Field(default_factory=JobLimits)
    network: NetworkPolicy = Field(default_factory=NetworkPolicy)
    parent: ParentRef | None = None
    conversation: tuple[Exchange, ...] = Field(
        default=(), max_length=10, description="Earlier requests of a follow-up, oldest first."
    )
    webhook_url: str | None = None

    _repo = field_validator("repo")(_check_repo)
    _prompt = field_validator("prompt")(_check_text("prompt"))
    _title = field_validator("title")(_check_text("title"))
    _base = field_validator("base_branch")(_optional_branch)

    @field_validator("work_order_id")
    @classmethod
    def _work_order_id(cls, value: str) -> str:
        if not _WORK_ORDER_ID.match(value):
            raise ValueError(
                "work_order_id must be 1-128 letters, digits, '_' or '-', starting with a letter"
                " or digit (it names a directory and the default branch)"
            )
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return check_branch_name(value)

    @field_validator("checks")
    @classmethod
    def _checks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for command in value:
            _check_text("check command")(command)
            if len(command) > MAX_TEXT_LENGTH:
                raise ValueError(f"a check command is longer than {MAX_TEXT_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> JobSpec:
        if self.base_branch is not None and self.base_branch == self.branch:
            raise ValueError(f"the work branch {self.branch!r} is also the base branch")
        return self

    def agent_prompt(self) -> str:
        """What the agent is asked: a follow-up's earlier requests and answers, then this one."""
        if not self.conversation:
            return self.prompt
        parts = ["This continues earlier work on this branch. The conversation so far:"]
        for number, exchange in enumerate(self.conversation, start=1):
            parts.append(f"Request {number}:\n{exchange.prompt}")
            if exchange.final_message:
                parts.append(f"Your answer {number}:\n{exchange.final_message}")
        parts.append(f"Now the new request:\n{self.prompt}")
        return "\n\n".join(parts)[-MAX_PROMPT_CHARS:]

    def commit_message(self) -> str:
        """The job's commit: the title, then the request."""
        return f"{self.title}\n\n{self.prompt}"[:20_000]


# --- the workspace, anywhere ------------------------------------------------------------------


class WorkspaceState(JobModel):
    """Where a job's workspace stands: enough for any worker to rebuild it exactly.

    ``commit_sha`` is the tree every step starts from; when it is the job's own commit (a
    checkpoint), ``bundle_storage_id`` is the git bundle in Convex storage that holds it.
    """

    work_order_id: str
    repo: Repo
    branch: str
    base_sha: Sha = Field(description="Where the job started: the base tip or the parent's head.")
    commit_sha: Sha = Field(description="The commit the workspace must be at.")
    bundle_storage_id: str | None = Field(
        default=None, description="Bundle of base_sha..commit_sha; None when they are equal."
    )

    _repo = field_validator("repo")(_check_repo)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return check_branch_name(value)

    @property
    def changed(self) -> bool:
        """True once the job has a commit of its own on top of where it started."""
        return self.commit_sha != self.base_sha


class Attempts(JobModel):
    """How many attempts a step took and why the earlier ones ended (from their heartbeats)."""

    count: int = Field(default=1, ge=1)
    reasons: tuple[str, ...] = ()


class PrepareWorkspaceInput(JobModel):
    """Resolve where the job starts and make its workspace (on the worker that runs this)."""

    job: JobSpec


class Workspace(JobModel):
    """The prepared workspace: where the job starts, and what the push must expect."""

    state: WorkspaceState
    base_branch: str = Field(description="The base branch (given, or the remote's default).")
    remote_branch_sha: str | None = Field(
        default=None,
        description="The work branch's tip on the remote when prepared (None: absent): the "
        "push's lease.",
    )
    repo: str = Field(description="The repository location with credentials removed.")
    reused: bool = Field(description="True when this worker's cached workspace was reused.")
    attempts: Attempts = Field(default_factory=Attempts)

    def step_record(self) -> StepRecord:
        payload = WorkspacePayload(
            branch=self.state.branch,
            base_sha=self.state.base_sha,
            base_branch=self.base_branch,
            follow_up=self.remote_branch_sha == self.state.base_sha,
            attempts=self.attempts.count,
            retried_because=list(self.attempts.reasons) or None,
        )
        return StepRecord(status="succeeded", payload=payload.dump(), attempts=self.attempts.count)


class WorkspacePayload(Payload):
    """``prepare_workspace``'s step payload."""

    branch: str
    base_sha: str
    base_branch: str
    follow_up: bool = False
    attempts: int = 1
    retried_because: list[str] | None = None


class StoredFile(JobModel):
    """A file the job put in Convex storage (a log, a diff, a checkpoint bundle)."""

    storage_id: str
    bytes: int = Field(ge=0)
    truncated: bool = Field(default=False, description="The log hit its cap (head and tail kept).")


# --- run_agent ------------------------------------------------------------------------------


class RunAgentInput(JobModel):
    """Run the agent on the workspace at ``state``, then checkpoint what it changed."""

    state: WorkspaceState
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    message: str = Field(min_length=1, max_length=20_000, description="The commit message.")
    committed_at_ms: int = Field(
        ge=0, description="The checkpoint commit's time: the same tree gives the same commit."
    )
    run_id: str = Field(description="The Convex run the agent's live events belong to.")
    limits: JobLimits = Field(default_factory=JobLimits)
    network: bool = True

    _prompt = field_validator("prompt")(_check_text("prompt"))
    _message = field_validator("message")(_check_text("commit message"))


AgentOutcome = Literal["succeeded", "failed", "timed_out", "budget_exceeded"]


class AgentProgress(JobModel):
    """One summarised Codex JSON event. ``seq`` is the event's index among the agent's JSON
    lines: stable for a given output, so it keys the event's idempotent write."""

    seq: int = Field(ge=0)
    type: str = Field(description="Codex event type: thread.started, item.completed, ...")
    item_type: str | None = Field(default=None, description="For item.*: agent_message, ...")
    summary: str = Field(max_length=400)


class AgentUsage(JobModel):
    """Token usage summed over the agent's ``turn.completed`` events."""

    input_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    @property
    def total(self) -> int:
        """What a token budget counts: input and output tokens."""
        return self.input_tokens + self.output_tokens

    def plus(self, other: AgentUsage | None) -> AgentUsage:
        if other is None:
            return self
        return AgentUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class AgentResult(JobModel):
    """How the agent run ended. A failed, timed-out or over-budget agent is a result, not an
    exception: its log, its checkpoint and its diff are still wanted."""

    outcome: AgentOutcome
    succeeded: bool
    exit_code: int | None = Field(
        description="The exit code; negative: killed by that signal; None: stopped by us."
    )
    timed_out: bool
    failure_reason: str | None = Field(default=None, max_length=2000)
    log: StoredFile | None = None
    checkpoint: WorkspaceState = Field(description="The workspace after the agent.")
    diff: StoredFile | None = Field(default=None, description="The diff from base; None: none.")
    files_changed: int = Field(default=0, ge=0)
    insertions: int = Field(default=0, ge=0)
    deletions: int = Field(default=0, ge=0)
    events_recorded: int = Field(ge=0, description="Progress events written to Convex live.")
    pending_events: tuple[NewEvent, ...] = Field(
        default=(), description="Progress that could not be written live: the workflow writes it."
    )
    events_dropped: int = Field(ge=0, description="Progress left out to respect the bound.")
    lines: int = Field(ge=0, description="Output lines seen, stdout and stderr.")
    json_events: int = Field(ge=0, description="Lines that parsed as Codex JSON events.")
    thread_id: str | None = None
    final_message: str | None = Field(
        default=None, max_length=4000, description="The last agent_message text, truncated."
    )
    usage: AgentUsage | None = Field(default=None, description="Over every attempt of the run.")
    agent_ms: int = Field(default=0, ge=0, description="Agent time over every attempt.")
    duration_ms: int = Field(ge=0)
    attempts: Attempts = Field(default_factory=Attempts)

    @property
    def failure_type(self) -> str:
        return "BudgetExceeded" if self.outcome == "budget_exceeded" else "AgentFailed"

    def step_record(self) -> StepRecord:
        payload = AgentPayload(
            outcome=self.outcome,
            exit_code=self.exit_code,
            duration_ms=self.duration_ms,
            lines=self.lines,
            json_events=self.json_events,
            final_message=self.final_message[:2000] if self.final_message else None,
            message=self.failure_reason,
            type=None if self.succeeded else self.failure_type,
            commit_sha=self.checkpoint.commit_sha if self.checkpoint.changed else None,
            files_changed=self.files_changed,
            usage=self.usage.model_dump() if self.usage else None,
            attempts=self.attempts.count,
            retried_because=list(self.attempts.reasons) or None,
        )
        return StepRecord(
            status="succeeded" if self.succeeded else "failed",
            payload=payload.dump(),
            log_storage_id=self.log.storage_id if self.log else None,
            checkpoint_storage_id=self.checkpoint.bundle_storage_id,
            attempts=self.attempts.count,
        )


class AgentPayload(Payload):
    """``run_agent``'s step payload; ``message`` and ``type`` say why it failed."""

    outcome: AgentOutcome
    exit_code: int | None
    duration_ms: int
    lines: int
    json_events: int
    final_message: str | None = None
    message: str | None = None
    type: str | None = None
    commit_sha: str | None = None
    files_changed: int = 0
    usage: dict[str, int] | None = None
    attempts: int = 1
    retried_because: list[str] | None = None


# --- run_check ------------------------------------------------------------------------------


class RunCheckInput(JobModel):
    """Run one check command (a shell string, ``/bin/sh -c``) on the workspace at ``state``."""

    state: WorkspaceState
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
    network: bool = False

    _command = field_validator("command")(_check_text("check command"))


class CheckResult(JobModel):
    """One check's outcome; a failing or timed-out check is a result, not an exception."""

    index: int
    command: str
    passed: bool
    exit_code: int | None = Field(description="None: timed out; negative: killed by a signal.")
    timed_out: bool
    duration_ms: int = Field(ge=0)
    log: StoredFile | None = None
    output_tail: str = Field(max_length=4000, description="The last lines of output.")
    attempts: Attempts = Field(default_factory=Attempts)

    def step_record(self) -> StepRecord:
        payload = CheckPayload(
            command=self.command,
            exit_code=self.exit_code,
            timed_out=self.timed_out,
            duration_ms=self.duration_ms,
            output_tail=None if self.passed else self.output_tail[-1000:],
            attempts=self.attempts.count,
            retried_because=list(self.attempts.reasons) or None,
        )
        return StepRecord(
            status="succeeded" if self.passed else "failed",
            payload=payload.dump(),
            log_storage_id=self.log.storage_id if self.log else None,
            attempts=self.attempts.count,
        )


class CheckPayload(Payload):
    """A check step's payload; the output's tail only when it failed."""

    command: str
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    output_tail: str | None = None
    attempts: int = 1
    retried_because: list[str] | None = None


# --- commit_and_push ------------------------------------------------------------------------


class CommitAndPushInput(JobModel):
    """Push the job's checkpoint commit to the work branch (nothing to push: nothing changed)."""

    state: WorkspaceState
    remote_branch_sha: str | None = Field(
        description="Workspace.remote_branch_sha: the lease; the push replaces only that."
    )


class CommitResult(JobModel):
    """What was pushed; ``changed=False`` is the clear "nothing to do" outcome."""

    changed: bool = Field(description="False: the agent changed nothing; nothing was pushed.")
    reason: str | None = Field(default=None, description="Why nothing was pushed, if so.")
    pushed: bool = Field(description="This attempt pushed (False when the remote had it).")
    branch: str
    base_sha: str
    commit_sha: str | None = Field(description="The pushed commit; None when unchanged.")
    attempts: Attempts = Field(default_factory=Attempts)

    def step_record(self) -> StepRecord:
        payload = CommitPayload(
            changed=self.changed,
            commit_sha=self.commit_sha,
            reason=self.reason,
            attempts=self.attempts.count,
            retried_because=list(self.attempts.reasons) or None,
        )
        return StepRecord(status="succeeded", payload=payload.dump(), attempts=self.attempts.count)


class CommitPayload(Payload):
    """``commit_and_push``'s step payload; ``reason`` says why nothing was pushed."""

    changed: bool
    commit_sha: str | None
    reason: str | None = None
    attempts: int = 1
    retried_because: list[str] | None = None


# --- open_pull_request ----------------------------------------------------------------------


class OpenPullRequestInput(JobModel):
    """Find or create the open pull request ``branch`` -> ``base_branch`` on GitHub; an open
    one (a follow-up's) gets the title and body given, which describe the whole change."""

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
    updated: bool = Field(default=False, description="An existing one got a new title/body.")
    repository: str | None = Field(default=None, description="owner/name on GitHub.")

    def step_record(self) -> StepRecord:
        if self.skipped:
            return StepRecord(status="skipped", payload={"reason": self.reason})
        payload = PullRequestPayload(
            url=self.url, number=self.number, created=self.created, updated=self.updated
        )
        return StepRecord(status="succeeded", payload=payload.dump())


class PullRequestPayload(Payload):
    """``open_pull_request``'s step payload."""

    url: str | None
    number: int | None
    created: bool
    updated: bool = False
