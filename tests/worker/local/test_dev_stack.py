"""`jangar dev` as a newcomer runs it: `jangar submit --wait` against it, and the chat side.

The job's repository is one the tests did not make: a bare clone of this project's own
repository. One module fixture drives the whole story (start; an operator's submit; the operator
registers the repository with its checks and a chat user, with a `jangar token`, orders a job
for it that the stack's own dispatcher runs; SIGTERM; restart on the same data directory;
submit again; SIGTERM); each test asserts one part of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.convex_client import ConvexClient, ConvexFunctionError
from tests.git_repos import git
from tests.processes import pid_alive
from tests.worker.conftest import (
    ROOT,
    STANDIN_COMMAND,
    Background,
    clean_env,
    jangar,
    start_jangar,
)
from worker.local.processes import free_port, temporal_binary

REGISTERED_CHECKS = ["test -f NOTES.md", "test -f README.md"]

SUBMIT_TIMEOUT = "180"


@dataclass
class DevStack:
    """What one `jangar dev` printed and how it ended."""

    process: Background
    exports: dict[str, str]
    pids: dict[str, int]
    health: str
    metrics: str
    exit_code: int | None = None
    stop_seconds: float | None = None
    alive_after_stop: dict[str, bool] = field(default_factory=dict)


@dataclass
class Story:
    repo: Path
    base: str
    first: DevStack
    second: DevStack
    ready_first: httpx.Response
    metrics_first: httpx.Response
    submit_first: subprocess.CompletedProcess[str]
    submit_second: subprocess.CompletedProcess[str]
    kept_workflow: dict[str, Any]
    chat: ChatStory
    kept_order: dict[str, Any]
    runs_after_restart: list[dict[str, Any]]
    jwks_first: httpx.Response


@dataclass
class ChatStory:
    """The chat side against the first stack: what each step answered."""

    registered: subprocess.CompletedProcess[str]
    token: subprocess.CompletedProcess[str]
    forbidden: ConvexFunctionError
    order_id: str
    timeline: dict[str, Any]
    job_order: dict[str, Any]


def _base_branch(bare: Path) -> str:
    """main when the repository has it (CI: a fresh clone of main), else its current branch."""
    if (
        subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "refs/heads/main"], cwd=bare, check=False
        ).returncode
        == 0
    ):
        return "main"
    return git("symbolic-ref", "--short", "HEAD", cwd=bare)


def _start_dev(data_dir: Path, logs: Path) -> DevStack:
    process = start_jangar(
        "dev",
        "--data-dir",
        str(data_dir),
        "--temporal-port",
        "0",
        "--convex-port",
        "0",
        "--health-port",
        "0",
        "--metrics-port",
        str(free_port()),
        env=clean_env(JANGAR_CODEX_COMMAND=STANDIN_COMMAND, SHUTDOWN_GRACE_SECONDS=10),
        logs=logs,
    )
    try:
        out = process.wait_for(r"^# ready", stream="stdout", timeout=90)
    except BaseException:
        process.stop()
        raise
    exports = dict(re.findall(r"^([A-Z_]+)=(\S+)$", out, re.MULTILINE))
    pids = {
        "temporal": int(_printed(r"Temporal dev server pid (\d+)", out)),
        "convex": int(_printed(r"Convex backend pid (\d+)", out)),
    }
    health = _printed(r"health (http://\S+)/readyz", out)
    metrics = _printed(r"metrics (http://\S+/metrics)", out)
    return DevStack(process, exports, pids, health, metrics)


def _printed(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, f"`jangar dev` did not print {pattern!r}:\n{text}"
    return found.group(1)


def _stop_dev(stack: DevStack) -> None:
    signalled = time.monotonic()
    stack.process.proc.send_signal(signal.SIGTERM)
    try:
        stack.exit_code = stack.process.proc.wait(timeout=45)
    except subprocess.TimeoutExpired:
        stack.exit_code = None
    stack.stop_seconds = time.monotonic() - signalled
    stack.alive_after_stop = {name: pid_alive(pid) for name, pid in stack.pids.items()}
    stack.process.stop()  # a no-op unless it hung
    for name, pid in stack.pids.items():  # never leave a server behind, even when it failed
        if stack.alive_after_stop[name]:
            os.kill(pid, signal.SIGKILL)


def _submit(stack: DevStack, repo: Path, base: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(**stack.exports)
    return jangar(
        "submit",
        "--repo",
        str(repo),
        "--base",
        base,
        "--prompt",
        "Add a NOTES.md that says what this project is",
        "--check",
        "test -f NOTES.md",
        "--wait",
        "--json",
        "--timeout",
        SUBMIT_TIMEOUT,
        env=env,
        timeout=float(SUBMIT_TIMEOUT) + 30,
    )


async def _chat(stack: DevStack, repo: Path, base: str) -> ChatStory:
    """The operator registers the repository; a user with a development token orders a job
    through the public functions, as the chat UI would; the stack's dispatcher runs it."""
    env = clean_env(**stack.exports)
    registered = jangar(
        "repos",
        "add",
        str(repo),
        "--check",
        REGISTERED_CHECKS[0],
        "--check",
        REGISTERED_CHECKS[1],
        env=env,
    )
    token = jangar("token", "--user", "alice", "--name", "Alice", env=env)
    url = stack.exports["CONVEX_URL"]
    async with ConvexClient(url, token=token.stdout.strip()) as alice:
        session = await alice.mutation("sessions:create", {"title": "chat"})
        message = await alice.mutation(
            "threads:append", {"sessionId": session, "content": "Add a NOTES.md for the chat"}
        )
        order = {"sessionId": session, "triggerMessageId": message, "summary": "chat job"}
        try:
            await alice.mutation(
                "workOrders:createFromMessage", {**order, "repo": "https://github.com/x/y.git"}
            )
            raise AssertionError("an unregistered repository was accepted")
        except ConvexFunctionError as exc:
            forbidden = exc
        order_id = await alice.mutation(
            "workOrders:createFromMessage", {**order, "repo": str(repo), "baseBranch": base}
        )
        deadline = time.monotonic() + 150
        while True:
            run = await alice.query("runs:getLatestForWorkOrder", {"workflowRequestId": order_id})
            if run is not None and run["status"] in ("succeeded", "failed", "canceled"):
                break
            assert time.monotonic() < deadline, f"the chat order did not finish: {run}"
            await asyncio.sleep(0.5)
        timeline = await alice.query("runs:getTimeline", {"runId": run["_id"], "limit": 500})
    async with ConvexClient(url, stack.exports["CONVEX_ADMIN_KEY"]) as operator:
        job = await operator.query("workOrders:getForJob", {"workflowRequestId": order_id})
    return ChatStory(registered, token, forbidden, order_id, timeline, job["order"])


def _describe(address: str, workflow_id: str) -> dict[str, Any]:
    """The workflow as the Temporal CLI describes it (status, run id)."""
    done = subprocess.run(
        [
            str(temporal_binary()),
            "workflow",
            "describe",
            "--address",
            address,
            "--workflow-id",
            workflow_id,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)["workflowExecutionInfo"]
    return {"status": info["status"], "run_id": info["execution"]["runId"]}


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    base_dir = tmp_path_factory.mktemp("dev")
    repo = base_dir / "jangar-self.git"
    git("clone", "-q", "--bare", str(ROOT), str(repo), cwd=base_dir)
    base = _base_branch(repo)
    data_dir = base_dir / "data"

    first = _start_dev(data_dir, base_dir / "logs")
    try:
        ready = httpx.get(f"{first.health}/readyz", timeout=10)
        jwks = httpx.get(first.exports["JANGAR_AUTH_JWKS_URL"], timeout=10)
        submit_first = _submit(first, repo, base)
        metrics = httpx.get(first.metrics, timeout=10)
        chat = asyncio.run(_chat(first, repo, base))
    finally:
        _stop_dev(first)

    second = _start_dev(data_dir, base_dir / "logs")
    try:
        result = json.loads(submit_first.stdout)
        kept = _describe(second.exports["TEMPORAL_ADDRESS"], result["workflowId"])
        kept_order = asyncio.run(_order_as_operator(second, result["workOrderId"]))
        listed = jangar("runs", "list", "--json", env=clean_env(**second.exports))
        assert listed.returncode == 0, listed.stderr
        runs_after_restart = json.loads(listed.stdout)
        submit_second = _submit(second, repo, base)
    finally:
        _stop_dev(second)
    yield Story(
        repo,
        base,
        first,
        second,
        ready,
        metrics,
        submit_first,
        submit_second,
        kept,
        chat,
        kept_order,
        runs_after_restart,
        jwks,
    )


async def _order_as_operator(stack: DevStack, order_id: str) -> dict[str, Any]:
    url, key = stack.exports["CONVEX_URL"], stack.exports["CONVEX_ADMIN_KEY"]
    async with ConvexClient(url, key) as operator:
        order: dict[str, Any] = await operator.query(
            "workOrders:getAsOperator", {"workflowRequestId": order_id}
        )
    return order


def test_dev_prints_addresses_and_key_and_serves_health_and_metrics(story: Story) -> None:
    exports = story.first.exports
    assert re.fullmatch(r"127\.0\.0\.1:\d+", exports["TEMPORAL_ADDRESS"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["CONVEX_URL"])
    assert exports["CONVEX_ADMIN_KEY"]
    assert exports["TEMPORAL_TASK_QUEUE"] == "jangar"
    assert not exports["TEMPORAL_ADDRESS"].endswith(":0")
    assert exports["JANGAR_AUTH_ISSUER"] == "https://jangar-dev.localhost"
    assert exports["JANGAR_AUTH_JWKS_URL"] == f"{exports['CONVEX_URL']}/.well-known/jwks.json"
    assert exports["JANGAR_AUTH_AUDIENCE"] == "jangar-dev"
    assert exports["JANGAR_AUTH_ALGORITHM"] == "RS256"
    assert Path(exports["JANGAR_DATA_DIR"]).is_absolute()
    jwks = story.jwks_first
    assert jwks.status_code == 200 and jwks.json()["keys"][0]["kty"] == "RSA"
    assert story.ready_first.status_code == 200, story.ready_first.text
    assert story.ready_first.json()["ready"] is True
    assert story.metrics_first.status_code == 200
    assert "temporal_" in story.metrics_first.text


def test_submit_wait_against_jangar_dev_succeeds_with_a_repository_the_tests_did_not_make(
    story: Story,
) -> None:
    done = story.submit_first
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    run = result["timeline"]["run"]
    assert run["repo"] == str(story.repo)
    steps = {s["name"]: s["status"] for s in result["timeline"]["steps"]}
    assert steps == {
        "prepare_workspace": "succeeded",
        "run_agent": "succeeded",
        "check 1: test -f NOTES.md": "succeeded",
        "commit_and_push": "succeeded",
        "open_pull_request": "skipped",
    }
    assert {a["type"] for a in result["timeline"]["artifacts"]} >= {"log", "diff"}
    # The commit reached the clone, on top of the base branch, with the agent's file. (The
    # branch itself is checked after the second run, which reuses its name: see below.)
    sha = run["commitSha"]
    assert git("cat-file", "-t", sha, cwd=story.repo) == "commit"
    assert git("rev-parse", f"{sha}^", cwd=story.repo) == git(
        "rev-parse", story.base, cwd=story.repo
    )
    assert "NOTES.md" in git("show", "--name-only", "--format=", sha, cwd=story.repo)


@pytest.mark.parametrize("which", ["first", "second"])
def test_sigterm_stops_jangar_dev_and_every_server_it_started(story: Story, which: str) -> None:
    stack: DevStack = getattr(story, which)
    assert stack.exit_code == 0, stack.process.stderr()[-3000:]
    assert stack.stop_seconds is not None and stack.stop_seconds < 30
    assert stack.alive_after_stop == {"temporal": False, "convex": False}
    assert "jangar dev stack stopped" in stack.process.stderr()


def test_restart_on_the_same_data_dir_keeps_temporal_workflows(story: Story) -> None:
    first = json.loads(story.submit_first.stdout)
    assert story.kept_workflow["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert story.kept_workflow["run_id"] == first["timeline"]["run"]["temporalRunId"]


def test_after_restart_convex_keeps_its_documents_and_a_new_order_gets_a_new_id(
    story: Story,
) -> None:
    """The local backend keeps its data under <data dir>/convex: the first order and its run
    survive the restart (`jangar runs list` still lists the run), and the next order is a new
    document with its own workflow."""
    first = json.loads(story.submit_first.stdout)
    assert story.kept_order["_id"] == first["workOrderId"]
    assert story.kept_order["status"] == "succeeded"
    done = story.submit_second
    assert done.returncode == 0, done.stderr[-3000:]
    second = json.loads(done.stdout)
    assert second["status"] == "succeeded"
    assert second["workOrderId"] != first["workOrderId"]
    assert second["workflowId"] != first["workflowId"]
    listed = {r["_id"]: r["status"] for r in story.runs_after_restart}  # `jangar runs list`
    assert listed[first["runId"]] == "succeeded"
    run = second["timeline"]["run"]
    assert git("rev-parse", run["branch"], cwd=story.repo) == run["commitSha"]


def test_a_chat_user_with_a_token_orders_a_job_that_runs_exactly_the_registrys_checks(
    story: Story,
) -> None:
    chat = story.chat
    assert chat.registered.returncode == 0, chat.registered.stderr
    assert chat.token.returncode == 0, chat.token.stderr
    assert chat.forbidden.code == "FORBIDDEN"
    assert "jangar repos add https://github.com/x/y.git" in chat.forbidden.message
    run = chat.timeline["run"]
    assert run["status"] == "succeeded", chat.timeline
    assert run["userId"] == "https://jangar-dev.localhost|alice"
    assert chat.timeline["workOrder"].get("checks") is None  # the order carries no commands
    checks = [s["name"] for s in chat.timeline["steps"] if s["kind"] == "check"]
    assert checks == [f"check {i}: {c}" for i, c in enumerate(REGISTERED_CHECKS, start=1)]
    assert chat.job_order["checks"] == REGISTERED_CHECKS


def test_sigterm_while_starting_still_stops_what_was_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process = start_jangar(
        "dev",
        "--data-dir",
        str(data_dir),
        "--temporal-port",
        "0",
        "--convex-port",
        "0",
        "--health-port",
        "0",
        "--metrics-port",
        "0",
        env=clean_env(JANGAR_CODEX_COMMAND=STANDIN_COMMAND),
        logs=tmp_path / "logs",
    )
    temporal_pid = None
    try:
        deadline = time.monotonic() + 30
        while temporal_pid is None:
            temporal_pid = _pid_with_argument(str(data_dir / "temporal" / "temporal.db"))
            assert time.monotonic() < deadline, "the Temporal dev server did not start"
            time.sleep(0.05)
        assert process.stdout() == ""  # still starting: nothing printed yet
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=45) == 0, process.stderr()[-3000:]
        assert not pid_alive(temporal_pid)
        assert "# ready" not in process.stdout()
    finally:
        process.stop()
        if temporal_pid is not None and pid_alive(temporal_pid):
            os.kill(temporal_pid, signal.SIGKILL)


def _pid_with_argument(argument: str) -> int | None:
    """A running process with ``argument`` on its command line (this test's unique path)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            return int(proc.name)
    return None
