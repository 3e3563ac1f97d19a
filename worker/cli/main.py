"""The ``jangar`` command line: worker, dispatcher, dev stack, token, submit, repos, runs, replay.

Exit codes: 0 success (``submit --wait``: the run succeeded); 1 the run failed or was canceled,
or a server could not be reached or refused; 2 a bad argument or setting (the message names
it; a bad argument writes nothing); 130 interrupted. Messages and the live view go to stderr;
results to stdout.

Operator commands (``submit``, ``repos``, ``runs``) call internal functions and need
``CONVEX_ADMIN_KEY`` or ``CONVEX_DEPLOY_KEY``; without one they exit 2. ``token`` prints a
development user token (``jangar dev``'s key) for the chat-side, public functions.

``--json`` prints one JSON document on stdout. The shapes are stable; documents from Convex
("run doc", "step doc"...) carry the fields of convex/schema.ts plus ``_id`` and
``_creationTime``, optional fields absent when unset, times in ms since the epoch:

``jangar submit --json``::

    {"sessionId": str, "messageId": str, "workOrderId": str,
     "workflowId": str,            # "work-order-<workOrderId>", also when a dispatcher starts it
     "runId": str | null,          # the run's Convex id (with --wait), else null
     "status": str,                # without --wait "queued"; with --wait the run's final
                                   # status: "succeeded" | "failed" | "canceled"; "failed" with
                                   # runId null when the order was rejected (message on stderr)
     "timeline": TIMELINE | null}  # with --wait once the run ended, else null

A notice on stderr (not an error, exit 0) says when the job was left to a dispatcher: Temporal
unreachable.

``jangar runs show RUN_ID --json`` prints a TIMELINE::

    {"run": run doc, "workOrder": work order doc,
     "steps": [step doc], "artifacts": [artifact doc], "events": [event doc]}
    # steps in the order they started, artifacts and events in time order, all events

``jangar runs list --json`` prints ``[run doc]``, newest first (every user's runs).

``jangar runs dashboard --json`` prints ``runs:getDashboard``'s answer::

    {"counts": {status: int}, "recent": [run doc],
     "usage": {"inputTokens", "cachedInputTokens", "outputTokens", "agentMs"}}  # all runs

``jangar runs cancel RUN_ID --json`` prints::

    {"runId": str, "workflowId": str,
     "status": str,                # the run's final status in Convex
     "alreadyEnded": bool}         # it had ended before the command asked Temporal

``jangar runs retry RUN_ID --json`` prints the ``submit --json`` shape for the new order plus
``"retryOfRunId": str``.

``jangar repos list --json`` prints ``[repository doc]``, by URL.

``jangar replay --json`` prints ``{"replayed": int, "failures": {workflowId: str}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from activities.contract import MAX_PROMPT_CHARS, WORK_STATUSES
from worker.settings import Settings, SettingsError, env_name, load_settings

if TYPE_CHECKING:
    from activities.convex_client import ConvexClient
    from worker.cli.submit import Submitted


class UsageError(Exception):
    """A bad argument: reported with the argument's name, exit code 2."""


def _non_empty(name: str) -> Any:
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{name} must not be empty")
        return value

    return check


def _single_token(name: str) -> Any:
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{name} must not be empty")
        if any(c.isspace() for c in value):
            raise argparse.ArgumentTypeError(f"{name} must not contain whitespace: {value!r}")
        return value

    return check


def _prompt(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("--prompt must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise argparse.ArgumentTypeError(
            f"--prompt is {len(value)} characters; the limit is {MAX_PROMPT_CHARS}"
        )
    return value


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535 (0: any free), got {number}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return number


def _webhook_url(value: str) -> str:
    """``--webhook``: an http(s) URL with a host and no credentials, as Convex will check it
    (convex/repositories.ts); http is allowed (a receiver on the worker's own network), the
    body is signed either way."""
    from urllib.parse import urlsplit

    from activities.contract import MAX_URL_LENGTH

    if not value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        raise argparse.ArgumentTypeError("must be a URL without spaces or control characters")
    if len(value) > MAX_URL_LENGTH:
        raise argparse.ArgumentTypeError(f"is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            "must be an http:// or https:// URL with a host, e.g. https://hooks.example/jangar"
        )
    if parts.username is not None or parts.password is not None:
        raise argparse.ArgumentTypeError(
            "must not carry credentials (user:password@): the receiver checks the "
            "X-Jangar-Signature made with JANGAR_WEBHOOK_SECRET instead"
        )
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jangar", description="Codex background jobs on Temporal, recorded in Convex."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser(
        "worker", help="run a worker (and, unless DISPATCHER_ENABLED=false, a dispatcher)"
    )
    sub.add_parser("dispatcher", help="run only the dispatcher: queued work orders -> workflows")

    dev = sub.add_parser("dev", help="run the embedded local stack in the foreground")
    dev.add_argument("--data-dir", default=None, help="where state lives (default JANGAR_DATA_DIR)")
    dev.add_argument("--temporal-port", type=_port, default=7233, help="0: any free port")
    dev.add_argument("--convex-port", type=_port, default=3210, help="0: any free port")
    dev.add_argument(
        "--health-port", type=_port, default=None, help="default HEALTH_PORT; 0: any free port"
    )
    dev.add_argument(
        "--metrics-port", type=_port, default=None, help="default METRICS_PORT; 0: no metrics"
    )

    token = sub.add_parser(
        "token", help="print a development user token (signed with `jangar dev`'s key)"
    )
    token.add_argument("--user", required=True, type=_non_empty("--user"), help="the token's sub")
    token.add_argument("--name", default=None, help="the token's name claim")
    token.add_argument(
        "--ttl", type=_positive_float, default=3600.0, help="lifetime in seconds (default 3600)"
    )
    token.add_argument("--data-dir", default=None, help="where `jangar dev` keeps its key")

    submit = sub.add_parser("submit", help="an operator's work order (admin key)")
    submit.add_argument("--repo", required=True, type=_non_empty("--repo"), help="URL or path")
    submit.add_argument("--prompt", required=True, type=_prompt)
    submit.add_argument(
        "--base",
        type=_single_token("--base"),
        help="base branch (default: the remote's default branch)",
    )
    submit.add_argument(
        "--branch",
        type=_single_token("--branch"),
        help="work branch (default: codex/<work order id>)",
    )
    submit.add_argument(
        "--user",
        type=_non_empty("--user"),
        default=os.environ.get("USER") or "cli",
        help="chat user id",
    )
    submit.add_argument(
        "--title",
        type=_non_empty("--title"),
        help="work order summary (default: the prompt's first line)",
    )
    submit.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="CMD",
        help="repeatable; default: the repository's registered checks",
    )
    submit.add_argument("--session", type=_single_token("--session"), help="reuse this session")
    submit.add_argument(
        "--fresh-start",
        action="store_true",
        help="do not continue the session's last order for this repository",
    )
    submit.add_argument("--wait", action="store_true", help="follow the run until it ends")
    submit.add_argument(
        "--timeout", type=_positive_float, default=None, help="seconds to wait at most"
    )
    submit.add_argument("--json", action="store_true", help="machine-readable output")

    repos = sub.add_parser("repos", help="the repository registry: what jobs may target")
    repos_sub = repos.add_subparsers(dest="repos_command", required=True, metavar="SUBCOMMAND")
    repos_add = repos_sub.add_parser("add", help="register a repository (or replace its entry)")
    repos_add.add_argument("url", metavar="URL", type=_non_empty("URL"))
    repos_add.add_argument(
        "--check", action="append", default=[], metavar="CMD", help="a check its jobs run"
    )
    repos_add.add_argument("--base", type=_single_token("--base"), help="default base branch")
    repos_add.add_argument(
        "--max-tokens", type=_positive_int, help="token budget of a run (input + output)"
    )
    repos_add.add_argument(
        "--max-agent-minutes", type=_positive_int, help="agent time budget of a run, in minutes"
    )
    repos_add.add_argument(
        "--max-concurrent-runs",
        type=_positive_int,
        help="jobs of this repository the dispatcher runs at once",
    )
    repos_add.add_argument(
        "--webhook", type=_webhook_url, metavar="URL", help="POSTed a signed JSON when a run ends"
    )
    repos_add.add_argument(
        "--agent-network",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the agent has network (default: yes)",
    )
    repos_add.add_argument(
        "--check-network",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the checks have network (default: no)",
    )
    repos_list = repos_sub.add_parser("list", help="registered repositories")
    repos_list.add_argument("--json", action="store_true")
    repos_remove = repos_sub.add_parser("remove", help="unregister a repository")
    repos_remove.add_argument("url", metavar="URL", type=_non_empty("URL"))

    runs = sub.add_parser("runs", help="list, show, cancel, retry runs; their logs (every user's)")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    runs_list = runs_sub.add_parser("list", help="recent runs, newest first, with their usage")
    runs_list.add_argument("--status", choices=WORK_STATUSES)
    runs_list.add_argument("--limit", type=_positive_int, default=20)
    runs_list.add_argument("--json", action="store_true")
    runs_dashboard = runs_sub.add_parser(
        "dashboard", help="runs by status, usage totals, the most recent runs"
    )
    runs_dashboard.add_argument("--limit", type=_positive_int, default=20)
    runs_dashboard.add_argument("--json", action="store_true")
    runs_show = runs_sub.add_parser("show", help="one run's timeline")
    runs_show.add_argument("run_id", metavar="RUN_ID", type=_single_token("RUN_ID"))
    runs_show.add_argument("--json", action="store_true")
    runs_cancel = runs_sub.add_parser(
        "cancel", help="cancel a running job; wait until Convex shows it ended"
    )
    runs_cancel.add_argument("run_id", metavar="RUN_ID", type=_single_token("RUN_ID"))
    runs_cancel.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        help="seconds to wait for the run to end (default 60)",
    )
    runs_cancel.add_argument("--json", action="store_true")
    runs_retry = runs_sub.add_parser("retry", help="a new work order with an ended run's inputs")
    runs_retry.add_argument("run_id", metavar="RUN_ID", type=_single_token("RUN_ID"))
    runs_retry.add_argument("--wait", action="store_true", help="follow the new run until it ends")
    runs_retry.add_argument(
        "--timeout", type=_positive_float, default=None, help="with --wait: seconds at most"
    )
    runs_retry.add_argument("--json", action="store_true")
    runs_logs = runs_sub.add_parser("logs", help="a run's step logs from Convex storage")
    runs_logs.add_argument("run_id", metavar="RUN_ID", type=_single_token("RUN_ID"))
    runs_logs.add_argument("--step", type=_non_empty("--step"), help="only this step's log")
    runs_logs.add_argument(
        "--follow",
        action="store_true",
        help="stream the run's events and each step's log as they land, until the run ends",
    )
    runs_logs.add_argument(
        "--timeout", type=_positive_float, default=None, help="with --follow: seconds at most"
    )

    replay = sub.add_parser("replay", help="replay recent histories against the current code")
    replay.add_argument("--limit", type=_positive_int, default=20)
    replay.add_argument("--workflow-id", action="append", default=[])
    replay.add_argument("--json", action="store_true")
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"jangar: {message}", file=sys.stderr)
    return code


def _require_key(settings: Settings, command: str) -> None:
    """Operator commands call internal functions: without the key, a bad setting (exit 2)."""
    if settings.convex_key is None:
        raise SettingsError(
            f"{env_name('convex_admin_key')}: `jangar {command}` is an operator command and needs "
            f"the admin key ({env_name('convex_admin_key')} or {env_name('convex_deploy_key')}; "
            "`jangar dev` prints it)"
        )


_ARGUMENT_CODES = {"INVALID_ARGUMENT", "TOO_LARGE"}


async def _submit(args: argparse.Namespace, settings: Settings) -> int:
    from activities.convex_client import ConvexFunctionError
    from worker.cli.submit import (
        BadArgument,
        SubmitRequest,
        check_request,
        create_work_order,
        normalize_repo,
    )
    from worker.factories import convex_client

    try:
        request = check_request(
            SubmitRequest(
                repo=normalize_repo(args.repo),
                prompt=args.prompt,
                base=args.base,
                branch=args.branch,
                user=args.user,
                title=args.title,
                checks=list(args.check),
                session=args.session,
                fresh_start=args.fresh_start,
            )
        )
    except (BadArgument, ValueError) as exc:
        raise UsageError(str(exc)) from None
    _require_key(settings, "submit")
    async with convex_client(settings) as convex:
        try:
            submitted = await create_work_order(convex, request)
        except ConvexFunctionError as exc:
            # Checked above already; Convex checks again in the one mutation, writing nothing.
            if exc.code == "NOT_FOUND" and args.session:
                raise UsageError(f"--session: no chat session {args.session!r}") from None
            if exc.code in _ARGUMENT_CODES:
                raise UsageError(exc.message) from None
            raise
        if not args.json:
            print(f"work order {submitted.work_order_id}", flush=True)
        return await _start_and_follow(args, convex, settings, submitted)


async def _start_and_follow(
    args: argparse.Namespace,
    convex: ConvexClient,
    settings: Settings,
    submitted: Submitted,
    extra: dict[str, Any] | None = None,
) -> int:
    """A new order (``submit``, ``runs retry``): start it now, follow it with ``--wait``, print
    the result. Exit 0, or with ``--wait`` 0 only if the run succeeded."""
    from worker.cli.submit import follow, print_timeline, start_now
    from worker.runtime.dispatcher import InvalidWorkOrder

    def result() -> str:
        return json.dumps({**submitted.as_json(), **(extra or {})}, indent=2)

    try:
        await start_now(convex, settings, submitted)
    except InvalidWorkOrder as exc:
        print(f"jangar: work order {submitted.work_order_id} rejected: {exc}", file=sys.stderr)
        if args.json:
            print(result())
        return 1
    if not args.json:
        print(f"workflow {submitted.workflow_id}", flush=True)
    if args.wait:
        try:
            async with asyncio.timeout(args.timeout):
                await follow(convex, submitted, live=not args.json)
        except TimeoutError:
            raise TimeoutError(
                f"--timeout: the run did not finish within {args.timeout:g}s "
                f"(work order {submitted.work_order_id})"
            ) from None
    if args.json:
        print(result())
    else:
        if submitted.timeline is not None:
            print()
        print_timeline(submitted)
    if args.wait:
        return 0 if submitted.status == "succeeded" else 1
    return 0


async def _repos(args: argparse.Namespace, settings: Settings) -> int:
    from activities.convex_client import ConvexFunctionError
    from activities.models import check_branch_name
    from activities.repo_url import classify_repo
    from worker.cli.render import repositories_table
    from worker.cli.submit import BadArgument, check_checks, normalize_repo
    from worker.factories import convex_client

    url: str | None = None
    if args.repos_command in ("add", "remove"):
        try:
            url = normalize_repo(args.url)
        except ValueError as exc:
            if args.repos_command == "add":  # a path must exist to be registered
                raise UsageError(str(exc).replace("--repo", "URL", 1)) from None
            url = args.url  # ...but one that is gone can still be removed
        try:
            classify_repo(url)
        except ValueError as exc:
            raise UsageError(f"URL: {exc}") from None
    if args.repos_command == "add":
        try:
            check_checks(args.check)
            if args.base is not None:
                check_branch_name(args.base)
        except BadArgument as exc:
            raise UsageError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(f"--base: {exc}") from None
    _require_key(settings, "repos")
    async with convex_client(settings) as convex:
        if args.repos_command == "list":
            entries = await convex.query("repositories:list", {})
            if args.json:
                print(json.dumps(entries, indent=2))
            else:
                print(repositories_table(entries) if entries else "no repositories registered")
            return 0
        assert url is not None
        if args.repos_command == "remove":
            removed = await convex.mutation("repositories:remove", {"url": url})
            print(("removed " if removed["removed"] else "not registered: ") + url)
            return 0
        entry: dict[str, Any] = {"url": url, "checks": list(args.check)}
        optional = {
            "baseBranch": args.base,
            "maxTokens": args.max_tokens,
            "maxAgentMinutes": args.max_agent_minutes,
            "maxConcurrentRuns": args.max_concurrent_runs,
            "webhookUrl": args.webhook,
            "agentNetwork": args.agent_network,
            "checkNetwork": args.check_network,
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        try:
            added = await convex.mutation("repositories:add", entry)
        except ConvexFunctionError as exc:
            if exc.code in _ARGUMENT_CODES:
                raise UsageError(exc.message) from None
            raise
        stored = await convex.query("repositories:get", {"url": url})
        checks = len(stored["checks"]) if stored else len(args.check)
        verb = "registered" if added["created"] else "updated"
        print(f"{verb} {stored['url'] if stored else url} ({checks} check(s))")
        return 0


async def _runs(args: argparse.Namespace, settings: Settings) -> int:
    from worker.cli.render import dashboard_text, runs_table, timeline_text, usage_line
    from worker.cli.runs import BadRun, read_timeline
    from worker.factories import convex_client

    _require_key(settings, "runs")
    async with convex_client(settings) as convex:
        if args.runs_command == "list":
            query: dict[str, Any] = {"limit": args.limit}
            if args.status:
                query["status"] = args.status
            runs = await convex.query("runs:listAll", query)
            if args.json:
                print(json.dumps(runs, indent=2))
            elif not runs:
                print("no runs")
            else:
                dashboard = await convex.query("runs:getDashboard", {"limit": 1})
                print(runs_table(runs))
                print(f"\nall runs: {usage_line(dashboard['usage'])}")
            return 0
        if args.runs_command == "dashboard":
            dashboard = await convex.query("runs:getDashboard", {"limit": args.limit})
            print(json.dumps(dashboard, indent=2) if args.json else dashboard_text(dashboard))
            return 0
        try:
            if args.runs_command == "cancel":
                return await _runs_cancel(args, convex, settings)
            if args.runs_command == "retry":
                return await _runs_retry(args, convex, settings)
            if args.runs_command == "logs":
                return await _runs_logs(args, convex)
            timeline = await read_timeline(convex, args.run_id)
        except BadRun as exc:
            raise UsageError(str(exc)) from None
        print(json.dumps(timeline, indent=2) if args.json else timeline_text(timeline))
        return 0


async def _runs_cancel(args: argparse.Namespace, convex: ConvexClient, settings: Settings) -> int:
    """Exit 0 when the run ends ``canceled`` (now or before); 1 when it ended otherwise."""
    from worker.cli.runs import cancel_run

    outcome = await cancel_run(convex, settings, args.run_id, wait_seconds=args.timeout)
    if args.json:
        print(json.dumps(outcome.as_json(), indent=2))
    elif outcome.already_ended:
        print(f"run {outcome.run_id} had already ended {outcome.status}; nothing to cancel")
    elif outcome.status == "canceled":
        print(f"run {outcome.run_id} canceled")
    else:
        print(
            f"run {outcome.run_id} ended {outcome.status} before the cancel took effect",
        )
    return 0 if outcome.status == "canceled" else 1


async def _runs_retry(args: argparse.Namespace, convex: ConvexClient, settings: Settings) -> int:
    from activities.convex_client import ConvexFunctionError
    from worker.cli.runs import BadRun
    from worker.cli.submit import Submitted

    try:
        created = await convex.mutation("workOrders:retry", {"runId": args.run_id})
    except ConvexFunctionError as exc:
        if exc.code in ("NOT_FOUND",):
            raise BadRun(
                f"RUN_ID: no run {args.run_id!r} (ids are listed by `jangar runs list`)"
            ) from None
        if exc.code == "CONFLICT":
            raise BadRun(f"RUN_ID: {exc.message}") from None
        if exc.code in _ARGUMENT_CODES:
            raise BadRun(
                f"RUN_ID: its work order cannot be submitted again: {exc.message}"
            ) from None
        raise
    order_id = str(created["workOrderId"])
    order = await convex.query("workOrders:getAsOperator", {"workflowRequestId": order_id})
    submitted = Submitted(str(order["sessionId"]), str(order["triggerMessageId"]), order_id)
    if not args.json:
        print(f"work order {order_id} (retry of run {args.run_id})", flush=True)
    return await _start_and_follow(
        args, convex, settings, submitted, extra={"retryOfRunId": args.run_id}
    )


async def _runs_logs(args: argparse.Namespace, convex: ConvexClient) -> int:
    from worker.cli.runs import follow_logs, print_logs

    out = sys.stdout.buffer
    sys.stdout.flush()
    if not args.follow:
        return await print_logs(convex, args.run_id, step=args.step, out=out, err=sys.stderr)
    try:
        async with asyncio.timeout(args.timeout):
            await follow_logs(convex, args.run_id, step=args.step, out=out)
    except TimeoutError:
        raise TimeoutError(
            f"--timeout: run {args.run_id} did not end within {args.timeout:g}s"
        ) from None
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from worker.local.dev_auth import DevAuthMissing, mint_token

    data_dir = (Path(args.data_dir) if args.data_dir else settings.data_dir).expanduser()
    try:
        token = mint_token(data_dir.resolve(), args.user, name=args.name, ttl=args.ttl)
    except DevAuthMissing as exc:
        raise UsageError(f"--data-dir: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(token)
    return 0


async def _dispatcher(settings: Settings) -> int:
    from worker.factories import convex_client
    from worker.logging import configure_logging
    from worker.runtime.dispatcher import Dispatcher
    from worker.runtime.temporal_client import connect_temporal
    from worker.runtime.workers import install_stop_signals

    configure_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    install_stop_signals(stop)
    client = await connect_temporal(settings)
    async with convex_client(settings) as convex:
        await Dispatcher(client, convex, settings).run(stop)
    return 0


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.command == "worker":
        from worker.runtime.workers import run_worker

        await run_worker(settings)
        return 0
    if args.command == "dispatcher":
        return await _dispatcher(settings)
    if args.command == "dev":
        from worker.local.dev_stack import run_dev_stack

        return await run_dev_stack(args, settings)
    # Client commands: library warnings go to stderr, never into stdout's results.
    from worker.logging import configure_logging

    configure_logging("WARNING", "console")
    if args.command == "submit":
        return await _submit(args, settings)
    if args.command == "repos":
        return await _repos(args, settings)
    if args.command == "runs":
        return await _runs(args, settings)
    if args.command == "token":
        return _token(args, settings)
    if args.command == "replay":
        from worker.cli.replay import replay_recent

        return await replay_recent(settings, args.limit, args.workflow_id, as_json=args.json)
    raise UsageError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code.

    As the console script (``argv`` None) the process then ends with ``os._exit`` after
    flushing its output: Temporal's Rust threads can outlive the event loop and abort the
    interpreter's teardown (temporalio/sdk-python#300, "PyGILState_Release ... finalizing"),
    which would turn a clean exit 0 into SIGABRT.
    """
    code = _main(argv)
    if argv is None:
        _hard_exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from activities.convex_client import ConvexClientError
    from worker.cli.runs import OperatorError
    from worker.local.local_convex import BackendStartError
    from worker.local.processes import StackError
    from worker.runtime.temporal_client import TemporalConnectError
    from worker.runtime.workers import WorkerFailed

    try:
        return asyncio.run(_run(args))
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        return _fail(str(exc), 2)
    except SettingsError as exc:
        return _fail(str(exc), 2)
    except ConvexClientError as exc:
        return _fail(f"Convex: {exc}")
    except (
        TemporalConnectError,
        StackError,
        BackendStartError,
        WorkerFailed,
        OperatorError,
    ) as exc:
        return _fail(str(exc))
    except TimeoutError as exc:
        return _fail(str(exc) or "timed out")
    except KeyboardInterrupt:
        return 130


def _hard_exit(code: int) -> NoReturn:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
