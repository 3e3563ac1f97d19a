"""``jangar submit``: an operator's work order, and following its run.

The operator path (the admin or deploy key): every argument is checked first with the same
rules the worker applies (a bad one writes nothing), then ONE internal mutation,
``workOrders:submitAsOperator``, writes the session (unless one is named), the user's message
and the order together, so a refusal there writes nothing either. The CLI then starts the job at
once (the dispatcher would pick it up too; "already started" makes the two harmless together).

The chat side (a user's token, public functions) creates orders with ``sessions:create``,
``threads:append`` and ``workOrders:createFromMessage``; ``make run`` does it that way, and
:func:`follow` reads a run either way (``reads=USER_READS`` with a user's token).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from activities.contract import (
    MAX_CHECKS,
    MAX_CONTENT_BYTES,
    MAX_ID_LENGTH,
    MAX_PROMPT_CHARS,
    MAX_TEXT_LENGTH,
)
from activities.convex_client import ConvexClient, ConvexUnavailableError
from activities.models import check_branch_name
from activities.repo_url import classify_repo
from worker.cli.render import fmt_duration, live_step_line, timeline_text
from worker.logging import get_logger
from worker.settings import Settings

log = get_logger(__name__)
TERMINAL = {"succeeded", "failed", "canceled"}
TITLE_CHARS = 80
"""A default title is the prompt's first line, cut to this many characters."""


class BadArgument(ValueError):
    """An argument the job would refuse; the message starts with the argument's name."""


@dataclass(frozen=True)
class SubmitRequest:
    """What the operator asked for (check it with :func:`check_request`)."""

    repo: str
    prompt: str
    base: str | None = None
    branch: str | None = None
    user: str = "cli"
    title: str | None = None
    checks: list[str] = field(default_factory=list)
    session: str | None = None
    fresh_start: bool = False

    @property
    def summary(self) -> str:
        """The order's summary (and a new session's title): ``title``, else the prompt's first
        line cut to TITLE_CHARS characters."""
        return self.title or default_title(self.prompt)


def default_title(prompt: str) -> str:
    """An order's title when none is given: the prompt's first line, cut to TITLE_CHARS."""
    return prompt.strip().splitlines()[0][:TITLE_CHARS]


def normalize_repo(repo: str) -> str:
    """Local paths become absolute, so a worker elsewhere on this machine finds them."""
    if "://" in repo or repo.startswith("git@") or ":" in repo.split("/")[0]:
        return repo
    path = Path(repo).expanduser()
    if not path.exists():
        raise ValueError(f"--repo: {repo!r} is neither a URL nor an existing path")
    return str(path.resolve())


def _text_problem(value: str, limit: int) -> str | None:
    if not value.strip():
        return "must not be empty"
    if "\x00" in value:
        return "must not contain a NUL character"
    if len(value) > limit:
        return f"is {len(value)} characters; the limit is {limit}"
    return None


def check_request(req: SubmitRequest) -> SubmitRequest:
    """Every argument, checked as Convex and the worker will check it (convex/lib/jobRules.ts,
    activities/models.py): :class:`BadArgument` naming the first bad one. Nothing is sent."""
    try:
        classify_repo(req.repo)
    except ValueError as exc:
        raise BadArgument(f"--repo: {exc}") from None
    problem = _text_problem(req.prompt, MAX_PROMPT_CHARS)
    if problem is None and len(req.prompt.encode()) > MAX_CONTENT_BYTES:
        problem = f"is {len(req.prompt.encode())} bytes; the limit is {MAX_CONTENT_BYTES}"
    if problem:
        raise BadArgument(f"--prompt {problem}")
    for flag, branch in (("--base", req.base), ("--branch", req.branch)):
        if branch is None:
            continue
        try:
            check_branch_name(branch)
        except ValueError as exc:
            raise BadArgument(f"{flag}: {exc}") from None
    if req.branch is not None and req.branch == req.base:
        raise BadArgument(f"--branch {req.branch!r} is also the base branch (--base)")
    problem = _text_problem(req.summary, MAX_TEXT_LENGTH)
    if problem:
        raise BadArgument(f"--title {problem}")
    problem = _text_problem(req.user, MAX_ID_LENGTH)
    if problem:
        raise BadArgument(f"--user {problem}")
    check_checks(req.checks)
    return req


def check_checks(checks: list[str]) -> list[str]:
    """``--check`` values: at most MAX_CHECKS, each non-blank, no NUL, bounded."""
    if len(checks) > MAX_CHECKS:
        raise BadArgument(f"--check given {len(checks)} times; the limit is {MAX_CHECKS}")
    for i, check in enumerate(checks, start=1):
        problem = _text_problem(check, MAX_TEXT_LENGTH)
        if problem:
            raise BadArgument(f"--check {i} {problem}")
    return checks


@dataclass
class Submitted:
    session_id: str
    message_id: str
    work_order_id: str
    workflow_id: str | None = None
    run_id: str | None = None
    status: str = "queued"
    timeline: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "messageId": self.message_id,
            "workOrderId": self.work_order_id,
            "workflowId": self.workflow_id,
            "runId": self.run_id,
            "status": self.status,
            "timeline": self.timeline,
        }


async def submit_as_operator(
    convex: ConvexClient,
    *,
    repo: str,
    prompt: str,
    title: str | None = None,
    user: str = "cli",
    **extra: Any,
) -> Submitted:
    """An operator's order in ONE internal mutation (``workOrders:submitAsOperator``; the
    client must hold the admin or deploy key): the session, the user's message and the order,
    all or nothing. ``extra`` are the mutation's other arguments under their own names:
    ``branchHint``, ``baseBranch``, ``checks`` (stored on the order; the registry is never
    written), ``sessionId`` (a session of ``user``), ``freshStart``. Tests and tools create
    orders through this one function."""
    args: dict[str, Any] = {
        "userId": user,
        "title": title or default_title(prompt),
        "repo": repo,
        "prompt": prompt,
        **{k: v for k, v in extra.items() if v is not None},
    }
    ids = await convex.mutation("workOrders:submitAsOperator", args)
    return Submitted(str(ids["sessionId"]), str(ids["messageId"]), str(ids["workOrderId"]))


async def create_work_order(convex: ConvexClient, req: SubmitRequest) -> Submitted:
    """``jangar submit``'s order: :func:`submit_as_operator` with the request's fields (check
    it first with :func:`check_request`). Each call is a new message, so running the command
    twice makes two orders."""
    return await submit_as_operator(
        convex,
        repo=req.repo,
        prompt=req.prompt,
        title=req.summary,
        user=req.user,
        branchHint=req.branch,
        baseBranch=req.base,
        checks=req.checks or None,
        sessionId=req.session,
        freshStart=True if req.fresh_start else None,
    )


@dataclass(frozen=True)
class Reads:
    """The Convex queries a client reads a run with: the operator's internal ones (admin key)
    or the chat user's public ones (the user's token; their own orders only)."""

    order: str
    latest_run: str
    timeline: str


OPERATOR_READS = Reads(
    "workOrders:getAsOperator",
    "runs:getLatestForWorkOrderAsOperator",
    "runs:getTimelineAsOperator",
)
USER_READS = Reads("workOrders:get", "runs:getLatestForWorkOrder", "runs:getTimeline")


async def start_now(convex: ConvexClient, settings: Settings, submitted: Submitted) -> None:
    """Start the job right away when Temporal is reachable; else leave it to the dispatcher.

    When Temporal cannot be reached the order stays queued and a notice saying so goes to
    stderr: it is not an error, a dispatcher will start it. An order the workflow can never
    accept is rejected (``workOrders:reject``) and ``InvalidWorkOrder`` raised. ``convex``
    holds the admin or deploy key (linking the order to its workflow is internal).
    """
    from temporalio.service import RPCError, RPCStatusCode

    from worker.runtime.dispatcher import InvalidWorkOrder, reject, start_job, workflow_id_for
    from worker.runtime.temporal_client import (
        TemporalConnectError,
        connect_config,
        connect_temporal,
    )

    out = sys.stderr
    submitted.workflow_id = workflow_id_for(submitted.work_order_id)
    later = (
        f"the work order stays queued; a dispatcher (`jangar worker` or `jangar dispatcher`) "
        f"will start workflow {submitted.workflow_id}"
    )
    # The order as the job runs it: checks and base branch from the registry when it has none.
    job = await convex.query("workOrders:getForJob", {"workflowRequestId": submitted.work_order_id})
    order = {**job["order"], "prompt": job["prompt"]}
    address = connect_config(settings)["target_host"]
    try:
        client = await asyncio.wait_for(connect_temporal(settings), timeout=10)
    except (TemporalConnectError, TimeoutError) as exc:
        log.debug("Temporal unreachable", error=str(exc))
        print(
            f"notice: Temporal is unreachable at {address} "
            f"(TEMPORAL_ADDRESS): {_first_line(exc)}; {later}",
            file=out,
            flush=True,
        )
        return
    try:
        await start_job(client, convex, settings, order)
    except InvalidWorkOrder as exc:
        await reject(convex, submitted.work_order_id, str(exc))
        submitted.status = "failed"
        raise
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise
        print(f"notice: Temporal did not answer: {exc.message}; {later}", file=out, flush=True)
        return


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


async def fetch_timeline(
    convex: ConvexClient, run_id: str, *, reads: Reads = OPERATOR_READS
) -> dict[str, Any]:
    """The whole timeline, following the events cursor to the end.

    Shape (stable, see worker/cli/main.py): ``{run, workOrder, steps, artifacts, events}``, the
    pagination fields of ``runs:getTimeline`` dropped since every event is included.
    """
    page = await convex.query(reads.timeline, {"runId": run_id, "limit": 500})
    events = list(page["events"])
    while not page["isDone"]:
        page = await convex.query(
            reads.timeline, {"runId": run_id, "cursor": page["continueCursor"], "limit": 500}
        )
        events.extend(page["events"])
    return {
        "run": page["run"],
        "workOrder": page["workOrder"],
        "steps": page["steps"],
        "artifacts": page["artifacts"],
        "events": events,
    }


async def follow(
    convex: ConvexClient,
    submitted: Submitted,
    *,
    out: TextIO = sys.stderr,
    poll: float = 0.5,
    live: bool = True,
    waiting_notice_after: float = 2.0,
    reads: Reads = OPERATOR_READS,
) -> Submitted:
    """Wait for the run, printing each step as it changes, until it reaches a final status.

    The live view (to ``out``) is one line per change: the run starting, each step's status
    with its duration once it ends, and the final status. Bound it with ``asyncio.timeout``
    where a limit is wanted. ``reads``: OPERATOR_READS (the admin key) or USER_READS (the
    order's owner's token). Convex being unreachable (``ConvexUnavailableError``) is waited
    out, with a notice when it goes and when it comes back: only the caller's limit ends it.
    """
    seen: dict[str, str] = {}
    waiting_noted = False
    outage_since: float | None = None
    began = time.monotonic()
    while True:
        try:
            done = await _follow_once(convex, submitted, reads, seen, out=out, live=live)
        except ConvexUnavailableError as exc:
            # Convex away (a restart, a network cut): keep waiting; the caller's timeout bounds it.
            if outage_since is None:
                outage_since = time.monotonic()
                if live:
                    print(
                        f"  Convex is unreachable ({_first_line(exc)}); still waiting",
                        file=out,
                        flush=True,
                    )
            await asyncio.sleep(min(max(poll, 0.5) * 2, 5.0))
            continue
        if outage_since is not None:
            if live:
                away = time.monotonic() - outage_since
                print(f"  Convex answers again (after {away:.0f}s)", file=out, flush=True)
            outage_since = None
        if done:
            return submitted
        if (
            submitted.run_id is None
            and live
            and not waiting_noted
            and time.monotonic() - began >= waiting_notice_after
        ):
            waiting_noted = True
            print("  waiting for a worker to start the job...", file=out, flush=True)
        await asyncio.sleep(poll)


async def _follow_once(
    convex: ConvexClient,
    submitted: Submitted,
    reads: Reads,
    seen: dict[str, str],
    *,
    out: TextIO,
    live: bool,
) -> bool:
    """One look at the run: print what changed; True once it (or its order) has ended."""
    run = await convex.query(reads.latest_run, {"workflowRequestId": submitted.work_order_id})
    if run is None:
        order = await convex.query(reads.order, {"workflowRequestId": submitted.work_order_id})
        if order["status"] not in TERMINAL:
            return False
        submitted.status = order["status"]  # rejected before any run started
        if live:
            reason = order.get("failureReason")
            print(
                f"work order {order['status']}" + (f": {reason}" if reason else ""),
                file=out,
                flush=True,
            )
        return True
    if live and submitted.run_id != run["_id"]:
        print(f"run {run['_id']} on branch {run.get('branch')}", file=out, flush=True)
    submitted.run_id = run["_id"]
    if live:  # the steps as they move; a quiet follower needs only the run
        timeline = await convex.query(reads.timeline, {"runId": run["_id"], "limit": 1})
        for step in timeline["steps"]:
            if seen.get(step["name"]) != step["status"]:
                seen[step["name"]] = step["status"]
                print(live_step_line(step), file=out, flush=True)
    if run["status"] not in TERMINAL:
        return False
    submitted.timeline = await fetch_timeline(convex, run["_id"], reads=reads)
    submitted.status = run["status"]
    if live:
        took = fmt_duration(run.get("startedAt"), run.get("endedAt"))
        print(f"run {run['status']} ({took})", file=out, flush=True)
    return True


def print_timeline(submitted: Submitted, out: TextIO = sys.stdout) -> None:
    if submitted.timeline is not None:
        print(timeline_text(submitted.timeline), file=out)
