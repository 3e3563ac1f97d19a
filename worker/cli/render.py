"""Human output for the CLI: plain tables and a run's timeline, no colours, no extra packages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from activities.contract import WORK_STATUSES


def fmt_time(ms: float | None) -> str:
    """A Convex millisecond timestamp as UTC wall time."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = max(0.0, (end - start) / 1000)
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def fmt_ms(ms: float | None) -> str:
    """A span of milliseconds (the agent's time) as fmt_duration writes durations."""
    return "-" if ms is None else fmt_duration(0, ms)


def fmt_count(value: float | None) -> str:
    """A token count with thousands separators; '-' when the run recorded none."""
    return "-" if value is None else f"{int(value):,}"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    footer: Sequence[Sequence[Any]] = (),
) -> str:
    """Left-aligned columns separated by two spaces; ``footer`` rows (totals) come after a
    second rule."""
    cells = [
        [str(h) for h in headers],
        *[[("-" if c is None else str(c)) for c in r] for r in [*rows, *footer]],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    rule = "  ".join("-" * w for w in widths)
    lines.insert(1, rule)
    if footer:
        lines.insert(len(lines) - len(footer), rule)
    return "\n".join(lines)


USAGE_FIELDS = ("inputTokens", "cachedInputTokens", "outputTokens", "agentMs")
"""A run's usage fields (runs:updateStatus), the same names as runs:getDashboard's totals."""


def usage_sums(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The usage fields summed over ``runs`` (a run without one counts 0)."""
    return {name: sum(float(r.get(name) or 0) for r in runs) for name in USAGE_FIELDS}


def runs_table(runs: Sequence[dict[str, Any]]) -> str:
    """One row per run with its token usage and agent time, and a row of their totals."""
    totals = usage_sums(runs)
    return table(
        [
            "RUN",
            "STATUS",
            "REPO",
            "BRANCH",
            "STARTED",
            "TOOK",
            "IN",
            "CACHED",
            "OUT",
            "AGENT",
            "PR",
        ],
        [
            [
                r["_id"],
                r["status"],
                r.get("repo"),
                r.get("branch"),
                fmt_time(r.get("startedAt")),
                fmt_duration(r.get("startedAt"), r.get("endedAt")),
                fmt_count(r.get("inputTokens")),
                fmt_count(r.get("cachedInputTokens")),
                fmt_count(r.get("outputTokens")),
                fmt_ms(r.get("agentMs")),
                r.get("prUrl"),
            ]
            for r in runs
        ],
        footer=[
            [
                f"total ({len(runs)} run{'s' if len(runs) != 1 else ''})",
                "",
                "",
                "",
                "",
                "",
                fmt_count(totals["inputTokens"]),
                fmt_count(totals["cachedInputTokens"]),
                fmt_count(totals["outputTokens"]),
                fmt_ms(totals["agentMs"]),
                "",
            ]
        ],
    )


def usage_line(usage: dict[str, Any]) -> str:
    """runs:getDashboard's usage totals (every run ever recorded) in one line."""
    return (
        f"input {fmt_count(usage.get('inputTokens', 0))} tokens"
        f" ({fmt_count(usage.get('cachedInputTokens', 0))} cached),"
        f" output {fmt_count(usage.get('outputTokens', 0))} tokens,"
        f" agent time {fmt_ms(usage.get('agentMs', 0))}"
    )


def dashboard_text(dashboard: dict[str, Any]) -> str:
    """runs:getDashboard: runs by status, usage totals of all runs, the recent runs."""
    counts = dashboard["counts"]
    statuses = [s for s in WORK_STATUSES if s in counts]
    statuses += [s for s in counts if s not in WORK_STATUSES]
    lines = [
        "runs: " + ", ".join(f"{int(counts[s])} {s}" for s in statuses),
        "usage, all runs: " + usage_line(dashboard["usage"]),
        "",
    ]
    recent = dashboard.get("recent") or []
    lines.append(f"{len(recent)} most recent runs:" if recent else "no runs")
    if recent:
        lines.append(runs_table(recent))
    return "\n".join(lines)


def _network(entry: dict[str, Any]) -> str:
    allowed = [
        name
        for name, field in (("agent", "agentNetwork"), ("checks", "checkNetwork"))
        if entry.get(field)
    ]
    return "+".join(allowed) or "none"


def repositories_table(entries: Sequence[dict[str, Any]]) -> str:
    """The registry: each repository with its base branch, checks, who gets network, its
    budgets, its concurrency limit and its webhook."""
    return table(
        [
            "URL",
            "BASE",
            "CHECKS",
            "NETWORK",
            "MAX-TOKENS",
            "MAX-MINUTES",
            "MAX-RUNS",
            "WEBHOOK",
        ],
        [
            [
                e["url"],
                e.get("baseBranch"),
                "; ".join(e.get("checks") or []) or None,
                _network(e),
                fmt_count(e.get("maxTokens")),
                None if e.get("maxAgentMinutes") is None else int(e["maxAgentMinutes"]),
                None if e.get("maxConcurrentRuns") is None else int(e["maxConcurrentRuns"]),
                e.get("webhookUrl"),
            ]
            for e in entries
        ],
    )


def live_step_line(step: dict[str, Any]) -> str:
    """One line of the live view: a step's status, and its duration once it has ended."""
    took = fmt_duration(step.get("startedAt"), step.get("endedAt"))
    return f"  [{step['status']:>9}] {step['name']}" + ("" if took == "-" else f"  ({took})")


def common_dir(urls: Iterable[str]) -> str | None:
    """The longest directory URL every one of ``urls`` lives under (None when there is none).

    Logs and diffs of one run share a directory whose URL is long (data dir, work order, run
    id); the timeline prints it once and each file relative to it. A bare scheme or host
    (``file://``, ``https://host``) is no directory worth printing: then None.
    """
    dirs = [u.rsplit("/", 1)[0].split("/") for u in urls if "://" in u]
    if not dirs:
        return None
    shared: list[str] = []
    for column in zip(*dirs, strict=False):
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    prefix = "/".join(shared)
    if "://" not in prefix or not urlsplit(prefix).path.strip("/"):
        return None
    return prefix


def relative_to(url: str | None, base: str | None) -> str | None:
    """``url`` relative to the directory ``base`` when it lives there, else unchanged."""
    if url is None or base is None or not url.startswith(base + "/"):
        return url
    return url[len(base) + 1 :]


def event_line(event: dict[str, Any]) -> str:
    """One event as the timeline and ``runs logs --follow`` print it."""
    return f"{fmt_time(event.get('createdAt'))}  {event['type']:<12} {_event_text(event)}"


def _event_text(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if "step" in data:
        return f"{data['step']} -> {data.get('status')}"
    if "status" in data:
        return f"run -> {data['status']}"
    if "agent" in data:
        agent = data["agent"]
        return f"agent: {agent.get('summary') or agent.get('type') or agent}"
    return str(data.get("message") or data)


def timeline_text(timeline: dict[str, Any]) -> str:
    """The run, its steps, artifacts and events, in the order they happened.

    Log and diff URLs are printed relative to the run's file directory, shown once as
    ``files:``; pull request URLs are printed whole.
    """
    run = timeline["run"]
    steps = timeline.get("steps", [])
    artifacts = timeline.get("artifacts", [])
    files = [s["logUrl"] for s in steps if s.get("logUrl")] + [
        a["url"] for a in artifacts if a.get("type") != "pr"
    ]
    base = common_dir(files)
    lines = [
        f"run {run['_id']}  status={run['status']}  repo={run.get('repo')}  "
        f"branch={run.get('branch')}",
        f"  started {fmt_time(run.get('startedAt'))}  took "
        f"{fmt_duration(run.get('startedAt'), run.get('endedAt'))}"
        + (f"  commit {run['commitSha'][:12]}" if run.get("commitSha") else "")
        + (f"  pr {run['prUrl']}" if run.get("prUrl") else ""),
    ]
    order = timeline.get("workOrder") or {}
    if order.get("parentWorkOrderId"):
        lines.append(f"  follow-up of work order {order['parentWorkOrderId']} (same branch and PR)")
    if order.get("retryOfWorkOrderId"):
        lines.append(f"  retry of work order {order['retryOfWorkOrderId']}")
    if run.get("failureReason"):
        lines.append(f"  failure: {_failure_text(run['failureReason'])}")
    if base is not None:
        lines.append(f"  files: {base}/")
    lines += ["", "steps:"]
    lines.append(
        table(
            ["#", "STEP", "KIND", "STATUS", "TOOK", "LOG"],
            [
                [
                    i,
                    s["name"],
                    s["kind"],
                    s["status"],
                    fmt_duration(s.get("startedAt"), s.get("endedAt")),
                    relative_to(s.get("logUrl"), base),
                ]
                for i, s in enumerate(steps, start=1)
            ],
        )
    )
    if artifacts:
        lines += ["", "artifacts:"]
        lines += [
            f"  {a['type']:<10} {a['label']}: "
            + (a["url"] if a.get("type") == "pr" else str(relative_to(a["url"], base)))
            for a in artifacts
        ]
    if timeline.get("events"):
        lines += ["", "events:"]
        lines += [f"  {event_line(e)}" for e in timeline["events"]]
    return "\n".join(lines)


def _failure_text(reason: Any) -> str:
    """A structured failureReason as one line: its step and message when it has them."""
    if isinstance(reason, dict):
        step = reason.get("step")
        message = reason.get("message") or reason.get("error") or reason
        return f"{step}: {message}" if step else str(message)
    return str(reason)
