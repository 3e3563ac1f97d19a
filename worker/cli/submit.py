"""``jangar submit``: a chat message becomes a work order, and (optionally) we follow its run.

The order of writes mirrors the chat side of the product: a session (created or reused), the
user's message, then the work order created from that message. The CLI then starts the job at
once (the dispatcher would pick it up too; "already started" makes the two harmless together).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from activities.convex_client import ConvexClient
from worker.cli.render import fmt_duration, live_step_line, timeline_text
from worker.logging import get_logger
from worker.settings import Settings

log = get_logger(__name__)
TERMINAL = {"succeeded", "failed", "canceled"}


@dataclass(frozen=True)
class SubmitRequest:
    """What the user asked for, already validated by the CLI."""

    repo: str
    prompt: str
    base: str | None = None
    branch: str | None = None
    user: str = "cli"
    title: str | None = None
    checks: list[str] = field(default_factory=list)
    session: str | None = None


def normalize_repo(repo: str) -> str:
    """Local paths become absolute, so a worker elsewhere on this machine finds them."""
    if "://" in repo or repo.startswith("git@") or ":" in repo.split("/")[0]:
        return repo
    path = Path(repo).expanduser()
    if not path.exists():
        raise ValueError(f"--repo: {repo!r} is neither a URL nor an existing path")
    return str(path.resolve())


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


async def create_work_order(convex: ConvexClient, req: SubmitRequest) -> Submitted:
    """Session, message and work order, in three writes.

    Each call is a new message (its ``clientMessageId`` is a new uuid), so running the command
    twice makes two orders; the work order is keyed on its message, so it is made once per
    message. (Nothing here retries: a failed write ends the command.)
    """
    title = req.title or req.prompt.strip().splitlines()[0][:80]
    session_id = req.session or await convex.mutation(
        "sessions:create", {"userId": req.user, "title": title}
    )
    message_id = await convex.mutation(
        "threads:append",
        {
            "sessionId": session_id,
            "role": "user",
            "content": req.prompt,
            "clientMessageId": f"cli-{uuid.uuid4()}",
        },
    )
    args: dict[str, Any] = {
        "sessionId": session_id,
        "triggerMessageId": message_id,
        "summary": title,
        "repo": req.repo,
    }
    if req.branch:
        args["branchHint"] = req.branch
    if req.base:
        args["baseBranch"] = req.base
    if req.checks:
        args["checks"] = req.checks
    work_order_id = await convex.mutation("workOrders:createFromMessage", args)
    return Submitted(str(session_id), str(message_id), str(work_order_id))


async def start_now(
    convex: ConvexClient,
    settings: Settings,
    submitted: Submitted,
    prompt: str,
    *,
    out: TextIO | None = None,
) -> bool:
    """Start the job right away when Temporal is reachable; else leave it to the dispatcher.

    Returns True when the workflow runs (started now, or already started by a dispatcher).
    When Temporal cannot be reached the order stays queued, a notice saying so goes to ``out``
    (stderr by default) and False is returned: it is not an error, a dispatcher will start it.
    An order the workflow can never accept is rejected (``workOrders:reject``) and
    ``InvalidWorkOrder`` raised.
    """
    from temporalio.service import RPCError, RPCStatusCode

    from worker.runtime.dispatcher import InvalidWorkOrder, reject, start_job, workflow_id_for
    from worker.runtime.temporal_client import (
        TemporalConnectError,
        connect_config,
        connect_temporal,
    )

    out = out or sys.stderr
    order = await convex.query("workOrders:get", {"workflowRequestId": submitted.work_order_id})
    submitted.workflow_id = workflow_id_for(submitted.work_order_id)
    later = (
        f"the work order stays queued; a dispatcher (`jangar worker` or `jangar dispatcher`) "
        f"will start workflow {submitted.workflow_id}"
    )
    if settings.convex_key is None:
        # Linking the order to its workflow is an internal mutation: without the key only a
        # dispatcher can start it (as for an order created by the chat UI).
        print(f"notice: CONVEX_ADMIN_KEY is not set; {later}", file=out, flush=True)
        return False
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
        return False
    try:
        await start_job(client, convex, settings, {**order, "prompt": prompt})
    except InvalidWorkOrder as exc:
        await reject(convex, submitted.work_order_id, str(exc))
        submitted.status = "failed"
        raise
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise
        print(f"notice: Temporal did not answer: {exc.message}; {later}", file=out, flush=True)
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


async def fetch_timeline(convex: ConvexClient, run_id: str) -> dict[str, Any]:
    """The whole timeline, following the events cursor to the end.

    Shape (stable, see worker/cli.py): ``{run, workOrder, steps, artifacts, events}``, the
    pagination fields of ``runs:getTimeline`` dropped since every event is included.
    """
    page = await convex.query("runs:getTimeline", {"runId": run_id, "limit": 500})
    events = list(page["events"])
    while not page["isDone"]:
        page = await convex.query(
            "runs:getTimeline", {"runId": run_id, "cursor": page["continueCursor"], "limit": 500}
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
) -> Submitted:
    """Wait for the run, printing each step as it changes, until it reaches a final status.

    The live view (to ``out``) is one line per change: the run starting, each step's status
    with its duration once it ends, and the final status. Bound it with ``asyncio.timeout``
    where a limit is wanted.
    """
    seen: dict[str, str] = {}
    shown_run: str | None = None
    waiting_noted = False
    began = time.monotonic()
    while True:
        run = await convex.query(
            "runs:getLatestForWorkOrder", {"workflowRequestId": submitted.work_order_id}
        )
        if run is None:
            order = await convex.query(
                "workOrders:get", {"workflowRequestId": submitted.work_order_id}
            )
            if order["status"] in TERMINAL:  # rejected before any run started
                submitted.status = order["status"]
                if live:
                    reason = order.get("failureReason")
                    print(
                        f"work order {order['status']}" + (f": {reason}" if reason else ""),
                        file=out,
                        flush=True,
                    )
                return submitted
            if live and not waiting_noted and time.monotonic() - began >= waiting_notice_after:
                waiting_noted = True
                print("  waiting for a worker to start the job...", file=out, flush=True)
        else:
            submitted.run_id = run["_id"]
            if live and shown_run != run["_id"]:
                shown_run = run["_id"]
                print(f"run {run['_id']} on branch {run.get('branch')}", file=out, flush=True)
            timeline = await convex.query("runs:getTimeline", {"runId": run["_id"], "limit": 1})
            for step in timeline["steps"]:
                if live and seen.get(step["name"]) != step["status"]:
                    seen[step["name"]] = step["status"]
                    print(live_step_line(step), file=out, flush=True)
            if run["status"] in TERMINAL:
                submitted.status = run["status"]
                submitted.timeline = await fetch_timeline(convex, run["_id"])
                if live:
                    took = fmt_duration(run.get("startedAt"), run.get("endedAt"))
                    print(f"run {run['status']} ({took})", file=out, flush=True)
                return submitted
        await asyncio.sleep(poll)


def print_timeline(submitted: Submitted, out: TextIO = sys.stdout) -> None:
    if submitted.timeline is not None:
        print(timeline_text(submitted.timeline), file=out)
