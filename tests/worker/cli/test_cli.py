"""The `jangar` CLI as an operator runs it: argument errors, submit --wait, runs, replay.

Argument errors need no server. The rest runs against a real `jangar worker` process (its
dispatcher off, so the CLI's own start is what starts each job), the Temporal dev server, the
local Convex backend, real git and the stand-in agent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities.convex_client import ConvexClient
from tests.git_repos import git, make_bare_repo
from tests.worker.conftest import (
    STANDIN_COMMAND,
    Background,
    clean_env,
    jangar,
    start_jangar,
    unique_queue,
)
from worker.local.local_convex import RunningBackend
from worker.local.processes import ManagedProcess, free_port

SUBMIT_KEYS = {"sessionId", "messageId", "workOrderId", "workflowId", "runId", "status", "timeline"}
TIMELINE_KEYS = {"run", "workOrder", "steps", "artifacts", "events"}
JOB_STEPS = ["prepare_workspace", "run_agent", "commit_and_push", "open_pull_request"]


# --- argument errors: a message naming the argument, exit code 2 -------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["submit", "--prompt", "do it"], "--repo"),
        (["submit", "--repo", ".", "--prompt", "   "], "--prompt"),
        (["submit", "--repo", ".", "--prompt", "x" * 100_001], "--prompt"),
        (["submit", "--repo", "/no/such/repository/here", "--prompt", "do it"], "--repo"),
        (["submit", "--repo", ".", "--prompt", "do it", "--branch", "has space"], "--branch"),
        (["submit", "--repo", ".", "--prompt", "do it", "--timeout", "-1"], "--timeout"),
        (["runs", "list", "--status", "sleeping"], "--status"),
        (["runs", "list", "--limit", "0"], "--limit"),
        (["runs", "show", " "], "RUN_ID"),
        (["dev", "--temporal-port", "70000"], "--temporal-port"),
        (["runs"], "SUBCOMMAND"),
    ],
    ids=[
        "missing-repo",
        "empty-prompt",
        "huge-prompt",
        "missing-local-repo",
        "branch-with-space",
        "negative-timeout",
        "bad-status",
        "zero-limit",
        "blank-run-id",
        "port-out-of-range",
        "missing-subcommand",
    ],
)
def test_bad_argument_names_it_and_exits_2(argv: list[str], named: str) -> None:
    # CONVEX_URL points nowhere: an argument error must be found before any server is called.
    done = jangar(*argv, env=clean_env(CONVEX_URL="http://127.0.0.1:9", TEMPORAL_ADDRESS="x:1"))
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_bad_setting_for_a_client_command_names_it_and_exits_2() -> None:
    done = jangar("runs", "list", env=clean_env(CONVEX_URL="ftp://nowhere"))
    assert done.returncode == 2
    assert "CONVEX_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_convex_exits_1_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = jangar("runs", "list", env=clean_env(CONVEX_URL=url))
    assert done.returncode == 1
    assert done.stderr.startswith("jangar: Convex: ") and f"cannot reach {url}" in done.stderr
    assert "Traceback" not in done.stderr


# --- against a running worker ---------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    repo: Path
    worker: Background


@pytest.fixture(scope="module")
def stack(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """`jangar worker` on its own task queue, its dispatcher off; env for CLI commands."""
    base = tmp_path_factory.mktemp("cli")
    assert op_convex.admin_key is not None
    env = clean_env(
        TEMPORAL_ADDRESS=op_temporal.address,
        TEMPORAL_TASK_QUEUE=unique_queue("cli"),
        CONVEX_URL=op_convex.url,
        CONVEX_ADMIN_KEY=op_convex.admin_key,
        JANGAR_DATA_DIR=base / "data",
        JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
    )
    worker = start_jangar(
        "worker",
        env=env
        | clean_env(
            HEALTH_HOST="127.0.0.1",
            HEALTH_PORT=free_port(),
            METRICS_PORT=0,
            DISPATCHER_ENABLED="false",
            SHUTDOWN_GRACE_SECONDS=10,
        ),
        logs=base / "logs",
    )
    try:
        worker.wait_for('"event": "worker started"')
        yield Stack(env, make_bare_repo(base), worker)
    finally:
        worker.stop()


@dataclass
class Submission:
    done: Any
    result: dict[str, Any]


def _submit_json(stack: Stack, *extra: str, prompt: str = "Add a NOTES.md") -> Submission:
    done = jangar(
        "submit",
        "--repo",
        str(stack.repo),
        "--prompt",
        prompt,
        "--wait",
        "--json",
        "--timeout",
        "120",
        *extra,
        env=stack.env,
    )
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"stdout is not one JSON document:\n{done.stdout}\n{done.stderr}"
        ) from None
    return Submission(done, result)


@pytest.fixture(scope="module")
def succeeded(stack: Stack) -> Submission:
    return _submit_json(stack, "--check", "test -f NOTES.md", "--title", "notes please")


@pytest.fixture(scope="module")
def failed(stack: Stack) -> Submission:
    return _submit_json(stack, "--check", "false", prompt="Add a NOTES.md, then fail a check")


def test_submit_wait_json_succeeds_with_documented_shape(
    stack: Stack, succeeded: Submission
) -> None:
    assert succeeded.done.returncode == 0, succeeded.done.stderr
    result = succeeded.result
    assert set(result) == SUBMIT_KEYS
    assert result["status"] == "succeeded"
    assert result["workflowId"] == f"work-order-{result['workOrderId']}"
    timeline = result["timeline"]
    assert set(timeline) == TIMELINE_KEYS
    assert timeline["run"]["_id"] == result["runId"]
    assert timeline["run"]["status"] == "succeeded"
    assert timeline["run"]["temporalWorkflowId"] == result["workflowId"]
    assert timeline["workOrder"]["_id"] == result["workOrderId"]
    assert timeline["workOrder"]["summary"] == "notes please"
    names = [s["name"] for s in timeline["steps"]]
    assert names == [*JOB_STEPS[:2], "check 1: test -f NOTES.md", *JOB_STEPS[2:]]
    assert {s["status"] for s in timeline["steps"]} <= {"succeeded", "skipped"}
    assert {a["type"] for a in timeline["artifacts"]} >= {"log", "diff"}
    assert timeline["events"][-1]["data"] == {"status": "succeeded"}
    # The live view went to stderr, never into the JSON on stdout.
    assert "[succeeded] run_agent" not in succeeded.done.stdout
    # The job really pushed its branch to the repository.
    sha = git("rev-parse", timeline["run"]["branch"], cwd=stack.repo)
    assert sha == timeline["run"]["commitSha"]


def test_submit_wait_with_failing_check_exits_1(failed: Submission) -> None:
    assert failed.done.returncode == 1, failed.done.stderr
    result = failed.result
    assert result["status"] == "failed"
    run = result["timeline"]["run"]
    assert run["failureReason"]["step"] == "check 1: false"
    steps = {s["name"]: s["status"] for s in result["timeline"]["steps"]}
    assert steps["check 1: false"] == "failed"


def test_submit_human_output_shows_live_view_and_timeline(stack: Stack) -> None:
    done = jangar(
        "submit",
        "--repo",
        str(stack.repo),
        "--prompt",
        "Add a NOTES.md for humans",
        "--wait",
        "--timeout",
        "120",
        env=stack.env,
    )
    assert done.returncode == 0, done.stderr
    order = re.search(r"^work order (\S+)$", done.stdout, re.MULTILINE)
    assert order is not None, done.stdout
    assert f"workflow work-order-{order.group(1)}" in done.stdout
    # Live view on stderr: the run, each step's status, the end.
    assert re.search(r"^run \S+ on branch codex/", done.stderr, re.MULTILINE), done.stderr
    assert re.search(r"\[succeeded\] run_agent  \(\d+\.\ds\)", done.stderr), done.stderr
    assert re.search(r"^run succeeded \(", done.stderr, re.MULTILINE), done.stderr
    # Timeline on stdout: the storage URL printed once, each stored file by its id under it.
    assert "status=succeeded" in done.stdout
    files = re.search(r"^  files: (http://127\.0\.0\.1:\d+/api/storage/)$", done.stdout, re.M)
    assert files is not None, done.stdout
    stored = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.search(rf"^2  run_agent\s+activity\s+succeeded\s+\S+\s+{stored}$", done.stdout, re.M)
    assert re.search(rf"diff against the base branch: {stored}$", done.stdout, re.M)
    assert "file://" not in done.stdout


def test_submit_with_unknown_session_names_it_and_exits_2(stack: Stack) -> None:
    done = jangar(
        "submit",
        "--repo",
        str(stack.repo),
        "--prompt",
        "x",
        "--session",
        "not-a-session",
        env=stack.env,
    )
    assert done.returncode == 2
    assert "--session" in done.stderr


def test_runs_list_json_and_status_filter(
    stack: Stack, succeeded: Submission, failed: Submission
) -> None:
    ok_run, bad_run = succeeded.result["runId"], failed.result["runId"]
    done = jangar("runs", "list", "--json", env=stack.env)
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    by_id = {r["_id"]: r for r in runs}
    assert by_id[ok_run]["status"] == "succeeded"
    assert by_id[bad_run]["status"] == "failed"
    started = [r["startedAt"] for r in runs]
    assert started == sorted(started, reverse=True)  # newest first

    done = jangar("runs", "list", "--status", "failed", "--json", env=stack.env)
    assert done.returncode == 0, done.stderr
    failed_runs = json.loads(done.stdout)
    assert bad_run in {r["_id"] for r in failed_runs}
    assert {r["status"] for r in failed_runs} == {"failed"}


def test_runs_list_human_table(stack: Stack, succeeded: Submission, failed: Submission) -> None:
    done = jangar("runs", "list", env=stack.env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "REPO", "BRANCH", "STARTED", "TOOK", "PR"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows[succeeded.result["runId"]][1] == "succeeded"
    assert rows[failed.result["runId"]][1] == "failed"
    assert rows[succeeded.result["runId"]][2] == str(stack.repo)


def test_runs_show_json_is_the_timeline(stack: Stack, succeeded: Submission) -> None:
    run_id = succeeded.result["runId"]
    done = jangar("runs", "show", run_id, "--json", env=stack.env)
    assert done.returncode == 0, done.stderr
    timeline = json.loads(done.stdout)
    assert set(timeline) == TIMELINE_KEYS
    assert timeline == succeeded.result["timeline"]


def test_runs_show_human_timeline(stack: Stack, failed: Submission) -> None:
    done = jangar("runs", "show", failed.result["runId"], env=stack.env)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"run {failed.result['runId']}  status=failed" in text
    assert re.search(r"^  failure: check 1: false: .+", text, re.MULTILINE), text
    row = r"^3  check 1: false\s+check\s+failed\s+\S+\s+[0-9a-f-]{36}$"
    assert re.search(row, text, re.MULTILINE), text
    assert "events:" in text
    assert text.rstrip().endswith("run -> failed")


@pytest.mark.parametrize("run_id", ["not-a-run-id", "0000000000000000000000099999runs"])
def test_runs_show_unknown_run_names_it_and_exits_2(stack: Stack, run_id: str) -> None:
    done = jangar("runs", "show", run_id, env=stack.env)
    assert done.returncode == 2
    assert "RUN_ID" in done.stderr
    assert "Traceback" not in done.stderr


def test_replay_against_the_dev_server_has_no_failures(
    stack: Stack, succeeded: Submission, failed: Submission
) -> None:
    ids = [succeeded.result["workflowId"], failed.result["workflowId"]]
    done = jangar("replay", "--limit", "100", env=stack.env)
    assert done.returncode == 0, done.stdout + done.stderr
    for workflow_id in ids:
        assert re.search(rf"^ok\s+{re.escape(workflow_id)}$", done.stdout, re.MULTILINE)
    summary = re.search(r"^(\d+) replayed, 0 failed$", done.stdout, re.MULTILINE)
    assert summary is not None, done.stdout
    assert int(summary.group(1)) >= 2

    named = ["--workflow-id", ids[0], "--workflow-id", ids[1]]
    done = jangar("replay", *named, "--json", env=stack.env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"replayed": 2, "failures": {}}


async def test_submit_wait_timeout_names_it_and_exits_1(
    stack: Stack, op_convex_client: ConvexClient
) -> None:
    """Nothing starts the job (Temporal unreachable, no dispatcher): the live view says it is
    waiting, and --timeout ends the wait with exit code 1."""
    env = stack.env | {"TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    args = ["submit", "--repo", str(stack.repo), "--prompt", "never runs", "--wait"]
    done = await asyncio.to_thread(jangar, *args, "--timeout", "3", env=env)
    order = re.search(r"^work order (\S+)$", done.stdout, re.MULTILINE)
    assert order is not None, done.stdout
    try:
        assert done.returncode == 1, done.stderr
        assert "notice: Temporal is unreachable" in done.stderr
        assert "waiting for a worker to start the job" in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("jangar: --timeout: the run did not finish within 3s"), last
        assert order.group(1) in last
    finally:  # take it off the queue: no dispatcher of a later test should meet it
        await op_convex_client.mutation(
            "workOrders:reject", {"workflowRequestId": order.group(1), "reason": "test over"}
        )


async def test_submit_without_admin_key_leaves_the_order_to_a_dispatcher(
    stack: Stack, op_convex_client: ConvexClient
) -> None:
    """Linking an order to its workflow needs the admin key; without it the CLI only creates
    the order (public functions), as the chat UI does, and says so."""
    env = {k: v for k, v in stack.env.items() if k != "CONVEX_ADMIN_KEY"}
    args = ["submit", "--repo", str(stack.repo), "--prompt", "no key", "--json"]
    done = await asyncio.to_thread(jangar, *args, env=env)
    assert done.returncode == 0, done.stderr
    assert "notice: CONVEX_ADMIN_KEY is not set" in done.stderr
    result = json.loads(done.stdout)
    try:
        assert result["status"] == "queued"
        order = await op_convex_client.query(
            "workOrders:get", {"workflowRequestId": result["workOrderId"]}
        )
        assert order["status"] == "queued" and "temporalWorkflowId" not in order
    finally:
        await op_convex_client.mutation(
            "workOrders:reject", {"workflowRequestId": result["workOrderId"], "reason": "test"}
        )
