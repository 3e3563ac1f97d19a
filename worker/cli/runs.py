"""``jangar runs cancel | retry | logs``: an operator's controls over one run.

All three read the run through the operator's internal queries (the admin or deploy key):

- cancel: the run names its Temporal workflow (``temporalWorkflowId``, ``temporalRunId``); the
  command asks Temporal to cancel that execution, then waits until Convex shows the run ended.
  The workflow does the rest: the running step is cancelled (the agent's or check's process
  group stopped), the step and the run are recorded ``canceled``. Convex is what the command
  waits on, not Temporal: a run is over for its readers when Convex says so.
- retry: ``workOrders:retry`` makes a new order with the ended run's inputs; the caller starts
  and follows it as ``jangar submit`` does.
- logs: each step's log is a file in Convex storage (the step's ``logUrl``, and a ``log``
  artifact with its ``storageId``). ``--follow`` also streams the run's events (the agent's
  progress is written in batches while it runs) and prints each step's log once the step has
  ended, until the run ends.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from activities.convex_client import ConvexClient, ConvexFunctionError
from worker.cli.render import event_line, fmt_duration
from worker.cli.submit import OPERATOR_READS, TERMINAL, fetch_timeline
from worker.settings import Settings

CONNECT_SECONDS = 10.0
"""How long the commands wait for Temporal to accept a connection."""
EVENTS_PAGE = 100
"""Events read per poll while following: the page re-read until it fills up."""


class BadRun(ValueError):
    """The run id is not one Convex knows, or the run cannot take this action (exit 2)."""


class OperatorError(RuntimeError):
    """The action could not be carried out; the message says why (exit 1)."""


@contextmanager
def _named_run(run_id: str) -> Iterator[None]:
    """Convex answering that there is no such run becomes :class:`BadRun` (exit 2)."""
    try:
        yield
    except ConvexFunctionError as exc:
        if exc.code in ("NOT_FOUND", "INVALID_ARGUMENT"):
            raise BadRun(
                f"RUN_ID: no run {run_id!r} (ids are listed by `jangar runs list`)"
            ) from None
        raise


async def read_run(convex: ConvexClient, run_id: str) -> dict[str, Any]:
    """The run's document; :class:`BadRun` when Convex has no run with this id."""
    with _named_run(run_id):
        page = await convex.query(OPERATOR_READS.timeline, {"runId": run_id, "limit": 1})
    run: dict[str, Any] = page["run"]
    return run


async def read_timeline(convex: ConvexClient, run_id: str) -> dict[str, Any]:
    """The run's whole timeline; :class:`BadRun` when Convex has no run with this id."""
    with _named_run(run_id):
        return await fetch_timeline(convex, run_id)


# --- cancel -----------------------------------------------------------------------------------


@dataclass
class Canceled:
    """How ``runs cancel`` ended; ``status`` is the run's final status in Convex."""

    run_id: str
    workflow_id: str
    status: str
    already_ended: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "workflowId": self.workflow_id,
            "status": self.status,
            "alreadyEnded": self.already_ended,
        }


async def cancel_run(
    convex: ConvexClient,
    settings: Settings,
    run_id: str,
    *,
    wait_seconds: float,
    poll: float = 0.5,
    err: TextIO = sys.stderr,
) -> Canceled:
    """Cancel the run's workflow in Temporal and wait (at most ``wait_seconds``) until
    Convex shows the run ended. A run that had already ended is reported, not touched."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    from worker.runtime.temporal_client import connect_config, connect_temporal

    run = await read_run(convex, run_id)
    workflow_id = str(run["temporalWorkflowId"])
    if run["status"] in TERMINAL:
        return Canceled(run_id, workflow_id, run["status"], already_ended=True)
    address = connect_config(settings)["target_host"]
    try:
        client = await asyncio.wait_for(connect_temporal(settings), timeout=CONNECT_SECONDS)
    except TimeoutError:
        raise OperatorError(
            f"cannot connect to Temporal at {address} (TEMPORAL_ADDRESS) within "
            f"{CONNECT_SECONDS:g}s; nothing was canceled"
        ) from None
    handle = client.get_workflow_handle(workflow_id, run_id=str(run["temporalRunId"]))
    closed = False
    try:
        await handle.cancel()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise OperatorError(
                f"Temporal refused to cancel workflow {workflow_id}: {exc.message}"
            ) from None
        closed = True  # the execution has already closed (or never existed there)
    print(f"cancel requested: workflow {workflow_id} (run {run_id})", file=err, flush=True)
    try:
        async with asyncio.timeout(wait_seconds):
            while True:
                run = await read_run(convex, run_id)
                if run["status"] in TERMINAL:
                    return Canceled(run_id, workflow_id, run["status"], already_ended=False)
                if closed:
                    # A closed workflow wrote its run's end before it closed; if Convex has no
                    # end, the execution was terminated or timed out and nothing will write it.
                    described = await handle.describe()
                    state = described.status
                    name = state.name if isinstance(state, WorkflowExecutionStatus) else "closed"
                    raise OperatorError(
                        f"workflow {workflow_id} is {name} in Temporal, but Convex still shows "
                        f"run {run_id} {run['status']}: nothing will record its end"
                    )
                await asyncio.sleep(poll)
    except TimeoutError:
        raise TimeoutError(
            f"--timeout: run {run_id} did not end within {wait_seconds:g}s after the cancel "
            f"request (it is still {run['status']}; the cancel stays requested in Temporal)"
        ) from None


# --- logs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    """One stored log: a step's (by its name) or a log artifact no step points at."""

    name: str
    url: str
    storage_id: str | None
    step: dict[str, Any] | None

    @property
    def ready(self) -> bool:
        """A step's log is final once the step has ended; an artifact is final when written."""
        return self.step is None or self.step["status"] not in ("pending", "running")


def log_files(timeline: dict[str, Any]) -> list[LogFile]:
    """The run's logs in step order, then log artifacts no step names (by URL)."""
    storage_of = {
        a["url"]: a.get("storageId") for a in timeline.get("artifacts", []) if a["type"] == "log"
    }
    files = [
        LogFile(s["name"], s["logUrl"], storage_of.get(s["logUrl"]), s)
        for s in timeline.get("steps", [])
        if s.get("logUrl")
    ]
    named = {f.url for f in files}
    files += [
        LogFile(a["label"], a["url"], a.get("storageId"), None)
        for a in timeline.get("artifacts", [])
        if a["type"] == "log" and a["url"] not in named
    ]
    return files


async def fetch_log(convex: ConvexClient, log: LogFile) -> bytes:
    """The log's bytes from Convex storage: by storage id when known (the URL Convex serves it
    at now), else from the step's ``logUrl``."""
    url: str | None = log.url
    if log.storage_id is not None:
        url = await convex.query("files:getUrl", {"storageId": log.storage_id})
        if url is None:
            raise OperatorError(f"the log of {log.name} is no longer in Convex storage")
    return await convex.download(str(url))


def _write_log(name: str, data: bytes, out: BinaryIO) -> None:
    out.write(f"==> {name} <==\n".encode())
    out.write(data)
    if data and not data.endswith(b"\n"):
        out.write(b"\n")
    out.flush()


def _steps_of(timeline: dict[str, Any]) -> list[str]:
    return [s["name"] for s in timeline.get("steps", [])]


def check_step(timeline: dict[str, Any], step: str | None) -> None:
    """``--step`` must name one of the run's steps (exit 2 otherwise, listing them)."""
    if step is not None and step not in _steps_of(timeline):
        names = ", ".join(repr(n) for n in _steps_of(timeline)) or "none yet"
        raise BadRun(
            f"--step: run {timeline['run']['_id']} has no step {step!r}; its steps: {names}"
        )


async def print_logs(
    convex: ConvexClient, run_id: str, *, step: str | None, out: BinaryIO, err: TextIO
) -> int:
    """Every stored log of the run (or of ``step``), each under a ``==> name <==`` line.
    Returns the exit code: 1 when the named step has no log."""
    timeline = await read_timeline(convex, run_id)
    check_step(timeline, step)
    files = [f for f in log_files(timeline) if step is None or f.name == step]
    if not files:
        what = f"step {step!r} of run {run_id}" if step else f"run {run_id}"
        print(f"{what} has no log (yet)", file=err, flush=True)
        return 1 if step else 0
    for log in files:
        _write_log(log.name, await fetch_log(convex, log), out)
    return 0


def _wanted(step: str | None) -> Callable[[dict[str, Any]], bool]:
    """With ``--step``: that step's state changes, and for run_agent the agent's progress."""
    if step is None:
        return lambda _event: True

    def wanted(event: dict[str, Any]) -> bool:
        data = event.get("data") or {}
        if not isinstance(data, dict):
            return False
        return data.get("step") == step or (step == "run_agent" and "agent" in data)

    return wanted


async def follow_logs(
    convex: ConvexClient,
    run_id: str,
    *,
    step: str | None,
    out: BinaryIO,
    poll: float = 0.5,
) -> str:
    """Stream the run's events as they are recorded, and each step's log once the step has
    ended, until the run ends; returns its final status.

    Events are read a page at a time from the timeline's cursor: the last page is read again
    on each poll until it fills, and events already printed are skipped by id. Events are
    ordered by the time they happened, and the agent's progress is written in batches, so one
    can land behind the cursor: when the run ends, every event is read once more from the
    start and any not yet printed is printed then.
    """
    wanted = _wanted(step)
    printed_events: set[str] = set()
    printed_logs: set[str] = set()
    cursor: str | None = None

    def emit(events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["_id"] in printed_events:
                continue
            printed_events.add(event["_id"])
            if wanted(event):
                out.write((event_line(event) + "\n").encode())
        out.flush()

    async def emit_logs(timeline: dict[str, Any], *, final: bool) -> None:
        for log in log_files(timeline):
            if log.url in printed_logs or (step is not None and log.name != step):
                continue
            if log.ready or final:
                printed_logs.add(log.url)
                _write_log(log.name, await fetch_log(convex, log), out)

    while True:
        args: dict[str, Any] = {"runId": run_id, "limit": EVENTS_PAGE}
        if cursor is not None:
            args["cursor"] = cursor
        with _named_run(run_id):  # only the first read can find no such run
            page = await convex.query(OPERATOR_READS.timeline, args)
        emit(page["events"])
        if not page["isDone"]:
            cursor = page["continueCursor"]
            continue
        await emit_logs(page, final=False)
        run = page["run"]
        if run["status"] in TERMINAL:
            timeline = await fetch_timeline(convex, run_id)
            check_step(timeline, step)  # a step named but never run: a bad --step after all
            emit(timeline["events"])
            await emit_logs(timeline, final=True)
            took = fmt_duration(run.get("startedAt"), run.get("endedAt"))
            out.write(f"run {run_id} {run['status']} ({took})\n".encode())
            out.flush()
            return str(run["status"])
        await asyncio.sleep(poll)
