"""Operator controls and the run features around them, end to end: `jangar runs cancel`,
`runs retry`, `runs logs [--follow]`, a token budget, a follow-up on the same branch and pull
request, and the run-finished webhook.

A real `jangar worker` process (its dispatcher off: each `jangar submit` or `runs retry` starts
its own job) runs against the Temporal dev server and the local Convex backend of this test
session, with real git, the stand-in agent and three stand-ins served by this process:

- a GitHub-like git host over HTTPS (tests/standins/git_https.py: real `git http-backend`,
  a certificate from a private CA made now, the token required on every request); the worker
  trusts the CA through JANGAR_GIT_CA_FILE and holds the token as GITHUB_TOKEN;
- the GitHub API's pull request endpoints (tests/standins/github_api.py), the API of that host;
- a webhook receiver (tests/standins/webhook_receiver.py).

The agent carries a random marker in its environment, so its processes are found wherever the
sandbox put them.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities.convex_client import ConvexClient
from activities.webhook import signature
from tests.git_repos import git, make_bare_repo
from tests.processes import pids_with_env
from tests.standins.git_https import GitHttpsStandin, make_certificates
from tests.standins.github_api import GitHubApiStandin
from tests.standins.webhook_receiver import WebhookReceiverStandin
from tests.worker.conftest import (
    STANDIN_COMMAND,
    Background,
    jangar,
    operator_env,
    start_jangar,
    wait_until,
    worker_env,
)
from worker.local.local_convex import RunningBackend
from worker.local.processes import ManagedProcess

TOKEN = f"ghp_{secrets.token_hex(12)}"
WEBHOOK_SECRET = secrets.token_hex(16)
TERMINAL = ("succeeded", "failed", "canceled")


@dataclass
class Controls:
    env: dict[str, str]  # for CLI commands: no stand-in marker, so never taken for the agent
    worker: Background
    marker: str
    base: Path
    convex: RunningBackend
    git_host: GitHttpsStandin
    github: GitHubApiStandin
    receiver: WebhookReceiverStandin

    def agent_pids(self) -> set[int]:
        """The stand-in agent's live processes (the worker carries the marker too: not it)."""
        return set(pids_with_env("CODEX_STANDIN_MARK", self.marker)) - {self.worker.pid}

    def repo(self, name: str) -> Path:
        return make_bare_repo(self.base / "repos", name)


@pytest.fixture(scope="module")
def controls(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Controls]:
    base = tmp_path_factory.mktemp("controls")
    (base / "git-host" / "octo").mkdir(parents=True)
    make_bare_repo(base / "git-host" / "octo", "widgets")
    git_host = GitHttpsStandin(base / "git-host", make_certificates(base / "certs"), token=TOKEN)
    github = GitHubApiStandin(token=TOKEN, repos={"octo/widgets"})
    receiver = WebhookReceiverStandin()
    marker = secrets.token_hex(8)
    env = operator_env(op_temporal.address, op_convex, queue="controls", data_dir=base / "data")
    git_host.start()
    try:
        github.start()
        try:
            receiver.start()
            try:
                worker = start_jangar(
                    "worker",
                    env=env
                    | worker_env(
                        SHUTDOWN_GRACE_SECONDS=5,
                        JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
                        JANGAR_AGENT_ENV_ALLOW="CODEX_STANDIN_*",
                        CODEX_STANDIN_MARK=marker,
                        JANGAR_HEARTBEAT_SECONDS=0.5,
                        JANGAR_KILL_GRACE_SECONDS=2,
                        GITHUB_API_URL=github.url,
                        GITHUB_TOKEN=TOKEN,
                        JANGAR_GIT_CA_FILE=git_host.certificates.ca,
                        JANGAR_WEBHOOK_SECRET=WEBHOOK_SECRET,
                    ),
                    logs=base / "logs",
                )
                try:
                    worker.wait_for('"event": "worker started"')
                    yield Controls(env, worker, marker, base, op_convex, git_host, github, receiver)
                finally:
                    worker.stop()
            finally:
                receiver.stop()
        finally:
            github.stop()
    finally:
        git_host.stop()


@pytest.fixture
async def operator(controls: Controls) -> AsyncIterator[ConvexClient]:
    async with ConvexClient(controls.convex.url, controls.convex.admin_key) as client:
        yield client


def submit(controls: Controls, *args: str, wait: bool = True) -> dict[str, Any]:
    """`jangar submit ... --json` (with --wait unless told otherwise); its JSON result."""
    extra = ["--wait", "--timeout", "180"] if wait else []
    done = jangar("submit", *args, *extra, "--json", env=controls.env, timeout=240)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON:\n{done.stdout}\n{done.stderr}") from None
    result["exitCode"] = done.returncode
    return result


async def latest_run(operator: ConvexClient, order_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] | None = await operator.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": order_id}
    )
    return run


async def timeline(operator: ConvexClient, run_id: str) -> dict[str, Any]:
    from worker.cli.submit import fetch_timeline

    return await fetch_timeline(operator, run_id)


@dataclass
class Job:
    order_id: str
    run_id: str
    workflow_id: str


async def start_job(controls: Controls, operator: ConvexClient, repo: Path, prompt: str) -> Job:
    """Submit without waiting, then wait until its run is recorded."""
    result = await asyncio.to_thread(
        submit, controls, "--repo", str(repo), "--prompt", prompt, wait=False
    )
    assert result["exitCode"] == 0, result
    order_id = result["workOrderId"]
    found: dict[str, Any] = {}

    async def started() -> bool:
        found["run"] = await latest_run(operator, order_id)
        return found["run"] is not None

    await wait_until(started, within=60, what="the job's run to be recorded")
    return Job(order_id, found["run"]["_id"], result["workflowId"])


@pytest.fixture(scope="module")
async def sleeping(controls: Controls) -> AsyncIterator[Job]:
    """A job whose agent sleeps five minutes: running until someone cancels it."""
    async with ConvexClient(controls.convex.url, controls.convex.admin_key) as operator:
        job = await start_job(
            controls, operator, controls.repo("sleepy"), "[standin:sleep=300] Add a NOTES.md"
        )

        async def agent_running() -> bool:
            return bool(controls.agent_pids())

        await wait_until(agent_running, within=60, what="the agent to start")
        yield job
        run = await latest_run(operator, job.order_id)
        if run is not None and run["status"] not in TERMINAL:  # the cancel test did not run
            await asyncio.to_thread(jangar, "runs", "cancel", job.run_id, env=controls.env)


@pytest.fixture(scope="module")
def succeeded(controls: Controls) -> dict[str, Any]:
    """A job of a registered repository with a check and a webhook; it succeeds."""
    repo = controls.repo("hooked")
    added = jangar(
        "repos",
        "add",
        str(repo),
        "--check",
        "echo check-output-marker",
        "--webhook",
        controls.receiver.url,
        env=controls.env,
    )
    assert added.returncode == 0, added.stderr
    result = submit(controls, "--repo", str(repo), "--prompt", "Add a NOTES.md for the hook")
    assert result["exitCode"] == 0 and result["status"] == "succeeded", result
    return result


# --- cancel -----------------------------------------------------------------------------------


def test_runs_retry_of_a_running_run_is_refused_with_exit_2(
    controls: Controls, sleeping: Job
) -> None:
    done = jangar("runs", "retry", sleeping.run_id, env=controls.env)
    assert done.returncode == 2, done.stderr
    assert "RUN_ID" in done.stderr and "still running" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


async def test_runs_cancel_ends_a_running_job_canceled_with_no_agent_process_left(
    controls: Controls, sleeping: Job, operator: ConvexClient
) -> None:
    assert controls.agent_pids(), "the agent should be running before the cancel"
    done = await asyncio.to_thread(
        jangar, "runs", "cancel", sleeping.run_id, "--timeout", "60", env=controls.env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"run {sleeping.run_id} canceled"
    assert f"cancel requested: workflow {sleeping.workflow_id}" in done.stderr
    found = await timeline(operator, sleeping.run_id)
    assert found["run"]["status"] == "canceled"
    assert found["workOrder"]["status"] == "canceled"
    steps = {s["name"]: s["status"] for s in found["steps"]}
    assert steps["run_agent"] == "canceled"
    assert controls.agent_pids() == set()  # the agent was stopped, not left behind


def test_runs_cancel_of_an_ended_run_says_so_exit_0_only_when_canceled(
    controls: Controls, sleeping: Job, succeeded: dict[str, Any]
) -> None:
    done = jangar("runs", "cancel", succeeded["runId"], env=controls.env)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == (
        f"run {succeeded['runId']} had already ended succeeded; nothing to cancel"
    )
    jangar("runs", "cancel", sleeping.run_id, env=controls.env)  # canceled, if not yet
    again = jangar("runs", "cancel", sleeping.run_id, "--json", env=controls.env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "runId": sleeping.run_id,
        "workflowId": sleeping.workflow_id,
        "status": "canceled",
        "alreadyEnded": True,
    }


# --- budgets ----------------------------------------------------------------------------------


async def test_a_run_over_its_token_budget_is_stopped_and_ends_failed_as_budget_exceeded(
    controls: Controls, operator: ConvexClient
) -> None:
    repo = controls.repo("budget")
    added = jangar("repos", "add", str(repo), "--max-tokens", "500", env=controls.env)
    assert added.returncode == 0, added.stderr
    turns = 50
    # Each stand-in turn reports ~190 tokens, so the budget is spent on the third turn;
    # unstopped, the 50 turns would take 10 s more.
    prompt = f"[standin:turns={turns}] [standin:turn-sleep=0.2] Add a NOTES.md"
    result = await asyncio.to_thread(submit, controls, "--repo", str(repo), "--prompt", prompt)
    assert result["exitCode"] == 1, result
    assert result["status"] == "failed"
    run = result["timeline"]["run"]
    assert run["failureReason"]["type"] == "BudgetExceeded"
    assert run["failureReason"]["step"] == "run_agent"
    assert "over its budget of 500" in run["failureReason"]["message"]
    # The usage the agent reported is recorded on the run, as fields.
    assert run["inputTokens"] + run["outputTokens"] > 500
    assert 0 < run["outputTokens"] < turns * 42  # stopped: not every turn ran
    assert run["cachedInputTokens"] == 0
    assert run["agentMs"] > 0
    [agent] = [s for s in result["timeline"]["steps"] if s["name"] == "run_agent"]
    assert agent["status"] == "failed" and agent["payload"]["outcome"] == "budget_exceeded"
    dashboard = await operator.query("runs:getDashboard", {"limit": 1})
    assert dashboard["usage"]["outputTokens"] >= run["outputTokens"]


# --- a follow-up: the same branch, the same pull request -----------------------------------


async def test_a_follow_up_adds_a_commit_on_the_branch_and_updates_the_one_pull_request(
    controls: Controls,
) -> None:
    """Over HTTPS to a git host behind a private CA, with the token: the first order adds a
    note and opens a pull request; a follow-up in the same session adds another on top."""
    url = controls.git_host.url("octo", "widgets")
    user = f"follow-{secrets.token_hex(4)}"
    first = await asyncio.to_thread(
        submit, controls, "--repo", url, "--user", user, "--prompt", "Add a first note"
    )
    assert first["exitCode"] == 0 and first["status"] == "succeeded", first
    second = await asyncio.to_thread(
        submit, controls, "--repo", url, "--user", user, "--session", first["sessionId"],
        "--prompt", "Add a second note",
    )  # fmt: skip
    assert second["exitCode"] == 0 and second["status"] == "succeeded", second
    run1, run2 = first["timeline"]["run"], second["timeline"]["run"]
    assert second["timeline"]["workOrder"]["parentWorkOrderId"] == first["workOrderId"]

    # The branch holds both commits, the first one unchanged, the second on top of it.
    bare = controls.base / "git-host" / "octo" / "widgets.git"
    assert run2["branch"] == run1["branch"]
    commits = git("rev-list", "--reverse", f"main..{run2['branch']}", cwd=bare).split()
    assert commits == [run1["commitSha"], run2["commitSha"]]
    git("merge-base", "--is-ancestor", run1["commitSha"], run2["commitSha"], cwd=bare)
    assert git("show", f"{run1['commitSha']}:NOTES.md", cwd=bare) == "- Add a first note"
    notes = git("show", f"{run2['branch']}:NOTES.md", cwd=bare)
    assert notes.splitlines() == ["- Add a first note", "- Add a second note"]

    # One pull request, opened once and then updated to describe both requests.
    github = controls.github
    [pull] = github.pulls["octo/widgets"]
    assert [r.method for r in github.requests if r.method != "GET"] == ["POST", "PATCH"]
    [patch] = [r for r in github.requests if r.method == "PATCH"]
    assert patch.path == f"/repos/octo/widgets/pulls/{pull['number']}"
    assert patch.body is not None
    assert patch.body["title"] == "Add a first note (+1 follow-up)" == pull["title"]
    assert "1. Add a first note" in pull["body"] and "2. Add a second note" in pull["body"]
    assert run1["prUrl"] == run2["prUrl"] == pull["html_url"]
    assert {r.authorization for r in github.requests} == {f"Bearer {TOKEN}"}

    # The git host saw the token on every request (it refuses any without), over TLS it
    # could only be reached through the private CA; and two pushes, one per job.
    assert controls.git_host.requests
    assert all(r.authorized and r.status == 200 for r in controls.git_host.requests)
    assert len(controls.git_host.pushes()) == 2


# --- the webhook ------------------------------------------------------------------------------


async def test_the_repositorys_webhook_gets_one_signed_post_per_run_recorded_as_an_event(
    controls: Controls, succeeded: dict[str, Any]
) -> None:
    run = succeeded["timeline"]["run"]
    mine = [
        d for d in controls.receiver.received() if json.loads(d.body).get("runId") == run["_id"]
    ]
    assert len(mine) == 1
    [delivery] = mine
    assert delivery.path == "/hooks/jangar"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-jangar-event"] == "run.finished"
    assert delivery.headers["x-jangar-signature"] == signature(WEBHOOK_SECRET, delivery.body)
    body = json.loads(delivery.body)
    assert body["event"] == "run.finished"
    assert body["status"] == "succeeded"
    assert body["workOrderId"] == succeeded["workOrderId"]
    assert body["commitSha"] == run["commitSha"]
    events = [e["data"] for e in succeeded["timeline"]["events"] if e["type"] == "system"]
    assert {"message": "webhook notified (200)", "webhook": True} in events


# --- retry ------------------------------------------------------------------------------------


def test_runs_retry_makes_a_new_order_with_the_same_inputs_and_follows_it(
    controls: Controls, succeeded: dict[str, Any]
) -> None:
    old_run = succeeded["runId"]
    done = jangar(
        "runs", "retry", old_run, "--wait", "--timeout", "180", "--json",
        env=controls.env, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["retryOfRunId"] == old_run
    assert result["status"] == "succeeded"
    assert result["workOrderId"] != succeeded["workOrderId"]
    assert result["sessionId"] == succeeded["sessionId"]
    order = result["timeline"]["workOrder"]
    old_order = succeeded["timeline"]["workOrder"]
    assert order["retryOfWorkOrderId"] == succeeded["workOrderId"]
    for field in ("repo", "summary", "userId"):
        assert order[field] == old_order[field]
    assert result["timeline"]["run"]["_id"] == result["runId"] != old_run
    names = [s["name"] for s in result["timeline"]["steps"]]
    assert "check 1: echo check-output-marker" in names  # the registry's check ran again

    human = jangar("runs", "retry", old_run, env=controls.env)
    assert human.returncode == 0, human.stderr
    assert re.match(rf"^work order \S+ \(retry of run {old_run}\)$", human.stdout.splitlines()[0])
    assert human.stdout.splitlines()[1].startswith("workflow work-order-")


# --- logs -------------------------------------------------------------------------------------


def test_runs_logs_prints_each_steps_log_from_convex_storage(
    controls: Controls, succeeded: dict[str, Any]
) -> None:
    run_id = succeeded["runId"]
    done = jangar("runs", "logs", run_id, env=controls.env)
    assert done.returncode == 0, done.stderr
    headers = re.findall(r"^==> (.+) <==$", done.stdout, re.MULTILINE)
    assert headers == ["run_agent", "check 1: echo check-output-marker"]
    agent_log, check_log = re.split(r"^==> .+ <==$\n", done.stdout, flags=re.MULTILINE)[1:]
    assert '"type": "turn.completed"' in agent_log  # the stand-in's Codex JSON lines
    assert "check-output-marker" in check_log

    one = jangar("runs", "logs", run_id, "--step", "check 1: echo check-output-marker",
                 env=controls.env)  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert re.findall(r"^==> (.+) <==$", one.stdout, re.MULTILINE) == [
        "check 1: echo check-output-marker"
    ]
    assert one.stdout.rstrip().endswith("check-output-marker")

    unknown = jangar("runs", "logs", run_id, "--step", "check 9", env=controls.env)
    assert unknown.returncode == 2
    assert "--step" in unknown.stderr and "'run_agent'" in unknown.stderr
    no_log = jangar("runs", "logs", run_id, "--step", "commit_and_push", env=controls.env)
    assert no_log.returncode == 1
    assert "has no log" in no_log.stderr and no_log.stdout == ""


async def test_runs_logs_follow_streams_agent_events_while_the_run_runs_then_the_logs(
    controls: Controls, operator: ConvexClient
) -> None:
    job = await start_job(
        controls,
        operator,
        controls.repo("followed"),
        "[standin:events=3] [standin:turns=6] [standin:turn-sleep=2] Add a NOTES.md",
    )
    follower = start_jangar(
        "runs", "logs", job.run_id, "--follow", "--timeout", "180",
        env=controls.env, logs=controls.base / "logs",
    )  # fmt: skip
    try:
        await asyncio.to_thread(follower.wait_for, r"agent: ", stream="stdout", timeout=60)
        run = await latest_run(operator, job.order_id)
        assert run is not None and run["status"] == "running"  # streamed, not replayed after
        code = await asyncio.to_thread(follower.proc.wait, 180)
        assert code == 0, follower.stderr()
        out = follower.stdout()
        lines = out.splitlines()
        assert lines[-1].startswith(f"run {job.run_id} succeeded (")
        agent_events = [i for i, line in enumerate(lines) if " agent: " in line]
        assert len(agent_events) >= 3
        log_header = lines.index("==> run_agent <==")
        assert max(agent_events) < log_header  # the log once the agent step ended
        assert re.search(r"state_change\s+run_agent -> succeeded", out)
        assert '"type": "turn.completed"' in out
        # Every event of the run was printed exactly once.
        found = await timeline(operator, job.run_id)
        event_lines = [line for line in lines if re.match(r"^\d{4}-\d\d-\d\d ", line)]
        assert len(event_lines) == len(found["events"])
    finally:
        follower.stop()
