"""``load_job``: a work order, its repository's registry entry and this worker's limits, made
into the one validated ``JobSpec`` the job runs.

The workflow's input is only the work order's id: everything else is read here, at the job's
start, by the worker that runs it, so the job's time limits and budgets come from the worker's
settings and the repository's entry, never from the environment of whoever submitted it. An
order whose fields the job cannot run (a bad branch name, a NUL in the prompt, a repository
the worker may not reach...) fails here with the non-retryable ``InvalidWorkOrder`` naming the
field: the workflow then marks the order failed with that reason instead of retrying forever.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.contract import MAX_JOB_TITLE_LENGTH
from activities.convex_client import ConvexClient, ConvexFunctionError
from activities.models import (
    Exchange,
    JobLimits,
    JobSpec,
    LoadJobInput,
    NetworkPolicy,
    ParentRef,
)
from activities.persistence import classified_convex_errors
from activities.repo_url import classify_repo

INVALID_WORK_ORDER = "InvalidWorkOrder"  # non-retryable


def job_title(summary: str | None) -> str:
    """The job's title (the PR title): the summary's first line, cut to the job title limit
    (a longer summary, which Convex allows, is cut rather than rejected)."""
    text = (summary or "").strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > MAX_JOB_TITLE_LENGTH:
        first = first[: MAX_JOB_TITLE_LENGTH - 3].rstrip() + "..."
    return first or "Codex job"


def validation_text(exc: ValidationError) -> str:
    """Pydantic's errors in one line, without echoing the (possibly huge) input values."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in exc.errors()
    )


def invalid(message: str) -> ApplicationError:
    return ApplicationError(
        f"invalid work order: {message}"[:2000], type=INVALID_WORK_ORDER, non_retryable=True
    )


def checked_job_spec(found: dict[str, Any], config: JobConfig) -> JobSpec:
    """``job_spec``; any rule the order breaks is one ``ValueError`` saying what is wrong."""
    try:
        return job_spec(found, config)
    except ValidationError as exc:
        raise ValueError(validation_text(exc)) from None


def job_spec(found: dict[str, Any], config: JobConfig) -> JobSpec:
    """The job from ``workOrders:getForJob``'s answer and this worker's config."""
    order = found["order"]
    entry = found.get("repository") or {}
    parent = found.get("parent")
    order_id = str(order["_id"])
    repo = str(order["repo"])
    kind = classify_repo(repo)
    if kind in ("local", "file") and not config.allow_local_repos:
        raise ValueError(
            "repo: local paths and file:// URLs are refused on this worker"
            " (JANGAR_ALLOW_LOCAL_REPOS is off); use an https:// or ssh URL"
        )
    checks = order.get("checks")
    if checks is None:
        checks = entry.get("checks") if entry else None
    if checks is None:
        checks = list(config.default_checks)
    minutes = entry.get("maxAgentMinutes")
    limits = JobLimits(
        agent_timeout_seconds=config.agent_timeout_seconds,
        check_timeout_seconds=config.check_timeout_seconds,
        git_timeout_seconds=config.git_timeout_seconds,
        heartbeat_timeout_seconds=config.heartbeat_timeout_seconds,
        max_tokens=int(entry["maxTokens"]) if entry.get("maxTokens") else config.max_tokens,
        max_agent_seconds=float(minutes) * 60 if minutes else config.max_agent_seconds,
    )
    network = NetworkPolicy(
        agent=bool(entry.get("agentNetwork", True)), checks=bool(entry.get("checkNetwork", False))
    )
    if order.get("freshStart"):
        parent = None
    # A parent that pushed nothing (it failed before its push) lends its branch name and the
    # conversation; the job then starts from the base, as a first job would.
    parent_ref = None
    if parent is not None and parent.get("commitSha"):
        parent_ref = ParentRef(
            work_order_id=str(parent["workOrderId"]),
            branch=str(parent["branch"]),
            commit_sha=str(parent["commitSha"]),
            pr_number=int(parent["prNumber"]) if parent.get("prNumber") else None,
            pr_url=parent.get("prUrl"),
        )
    branch = order.get("branchHint") or (
        str(parent["branch"]) if parent is not None else f"codex/{order_id}"
    )
    conversation = tuple(
        Exchange(
            prompt=str(turn["prompt"])[-100_000:],
            final_message=(turn.get("finalMessage") or None) and str(turn["finalMessage"])[:4000],
        )
        for turn in (found.get("conversation") or [])[-10:]
    )
    return JobSpec(
        work_order_id=order_id,
        session_id=order.get("sessionId"),
        repo=repo,
        base_branch=order.get("baseBranch") or entry.get("baseBranch") or None,
        branch=branch,
        prompt=str(found["prompt"]),
        title=job_title(order.get("summary")),
        checks=tuple(checks),
        limits=limits,
        network=network,
        parent=parent_ref,
        conversation=conversation if parent is not None else (),
        webhook_url=entry.get("webhookUrl") or None,
    )


async def load_job(inp: LoadJobInput, *, convex: ConvexClient, config: JobConfig) -> JobSpec:
    """Read and validate the job; see the module docstring."""
    async with classified_convex_errors("workOrders:getForJob"):
        try:
            found = await convex.query(
                "workOrders:getForJob", {"workflowRequestId": inp.work_order_id}
            )
        except ConvexFunctionError as exc:
            if exc.code in ("NOT_FOUND", "INVALID_ARGUMENT"):
                raise invalid(exc.message) from None
            raise
    try:
        return checked_job_spec(found, config)
    except ValueError as exc:
        raise invalid(str(exc)) from None
