"""The `jangar` CLI as an operator runs it: argument errors, submit --wait, repos, runs, replay.

Argument errors need no server. Whether a bad argument writes nothing is read from a local
backend's journal (one line per committed transaction). The rest runs against a real `jangar
worker` process (its dispatcher off, so the CLI's own start is what starts each job), the
Temporal dev server, the local Convex backend, real git and the stand-in agent.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
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
    operator_env,
    start_jangar,
    worker_env,
)
from worker.local.local_convex import RunningBackend, start_local_backend
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
        (["repos", "add", "relative/nowhere"], "URL"),
        (["repos", "add", "ext::sh -c id"], "URL"),
        (["repos", "add", "https://github.com/a/b", "--base", "a..b"], "--base"),
        (["repos", "add", "https://github.com/a/b", "--check", " "], "--check"),
        (["token"], "--user"),
        (["runs", "cancel"], "RUN_ID"),
        (["runs", "cancel", "has space"], "RUN_ID"),
        (["runs", "cancel", "r1", "--timeout", "0"], "--timeout"),
        (["runs", "retry", " "], "RUN_ID"),
        (["runs", "retry", "r1", "--timeout", "soon"], "--timeout"),
        (["runs", "logs", "r1", "--step", " "], "--step"),
        (["runs", "logs"], "RUN_ID"),
        (["runs", "dashboard", "--limit", "0"], "--limit"),
        (["repos", "add", "https://github.com/a/b", "--max-tokens", "0"], "--max-tokens"),
        (
            ["repos", "add", "https://github.com/a/b", "--max-agent-minutes", "1.5"],
            "--max-agent-minutes",
        ),
        (
            ["repos", "add", "https://github.com/a/b", "--max-concurrent-runs", "-1"],
            "--max-concurrent-runs",
        ),
        (
            ["repos", "add", "https://github.com/a/b", "--webhook", "ftp://hooks.example/x"],
            "--webhook",
        ),
        (
            ["repos", "add", "https://github.com/a/b", "--webhook", "https://u:p@hooks.example/"],
            "--webhook",
        ),
        (["repos", "add", "https://github.com/a/b", "--webhook", "https://"], "--webhook"),
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
        "repos-relative-url",
        "repos-transport-url",
        "repos-bad-base",
        "repos-blank-check",
        "token-without-user",
        "cancel-without-run",
        "cancel-run-with-space",
        "cancel-zero-timeout",
        "retry-blank-run",
        "retry-bad-timeout",
        "logs-blank-step",
        "logs-without-run",
        "dashboard-zero-limit",
        "repos-zero-max-tokens",
        "repos-fractional-minutes",
        "repos-negative-concurrency",
        "repos-webhook-scheme",
        "repos-webhook-credentials",
        "repos-webhook-no-host",
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
    done = jangar("runs", "list", env=clean_env(CONVEX_URL=url, CONVEX_ADMIN_KEY="k"))
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
    env = operator_env(
        op_temporal.address,
        op_convex,
        queue="cli",
        data_dir=base / "data",
        JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
    )
    worker = start_jangar(
        "worker", env=env | worker_env(SHUTDOWN_GRACE_SECONDS=10), logs=base / "logs"
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
    assert lines[0].split() == [
        "RUN", "STATUS", "REPO", "BRANCH", "STARTED", "TOOK", "IN", "CACHED", "OUT", "AGENT", "PR"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.strip()}
    ok = succeeded.result["timeline"]["run"]
    assert rows[ok["_id"]][1] == "succeeded"
    assert rows[failed.result["runId"]][1] == "failed"
    assert rows[ok["_id"]][2] == str(stack.repo)
    # The stand-in agent's usage, as recorded on the run, in the usage columns.
    assert rows[ok["_id"]][7:10] == [
        f"{int(ok['inputTokens']):,}",
        f"{int(ok['cachedInputTokens']):,}",
        f"{int(ok['outputTokens']):,}",
    ]
    total = next(line for line in lines if line.startswith("total ("))
    assert re.match(r"^total \(\d+ runs?\)", total)
    assert re.search(r"^all runs: input [\d,]+ tokens \([\d,]+ cached\), output [\d,]+ tokens,"
                     r" agent time \S+$", done.stdout, re.MULTILINE)  # fmt: skip


def test_runs_dashboard_counts_runs_and_totals_their_usage(
    stack: Stack, succeeded: Submission, failed: Submission
) -> None:
    done = jangar("runs", "dashboard", "--json", env=stack.env)
    assert done.returncode == 0, done.stderr
    dashboard = json.loads(done.stdout)
    assert set(dashboard) == {"counts", "recent", "usage"}
    assert dashboard["counts"]["succeeded"] >= 1 and dashboard["counts"]["failed"] >= 1
    ok = succeeded.result["timeline"]["run"]
    assert dashboard["usage"]["outputTokens"] >= ok["outputTokens"] > 0
    assert dashboard["usage"]["agentMs"] >= ok["agentMs"] > 0
    human = jangar("runs", "dashboard", "--limit", "5", env=stack.env)
    assert human.returncode == 0, human.stderr
    assert re.match(r"^runs: \d+ queued, \d+ running, \d+ succeeded", human.stdout)
    assert "usage, all runs: input " in human.stdout
    assert "RUN  " in human.stdout and "OUT" in human.stdout


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


# --- operator commands: the key, bad arguments that write nothing, the registry ---------------


@dataclass
class Journaled:
    """A local backend keeping its data in a directory, so its journal (one line per committed
    transaction) says whether a command wrote anything."""

    backend: RunningBackend
    data_dir: Path

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def admin_key(self) -> str | None:
        return self.backend.admin_key


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journaled]:
    data_dir = tmp_path_factory.mktemp("journaled")
    backend = start_local_backend(
        admin_key=f"j-{secrets.token_hex(8)}", env={"LOCAL_BACKEND_DATA_DIR": str(data_dir)}
    )
    try:
        yield Journaled(backend, data_dir)
    finally:
        backend.stop()


def journal(backend: Journaled) -> str:
    path = backend.data_dir / "journal.log"
    return path.read_text() if path.exists() else ""


def journaled_env(backend: Journaled, **extra: str) -> dict[str, str]:
    assert backend.admin_key is not None
    return clean_env(
        CONVEX_URL=backend.url,
        CONVEX_ADMIN_KEY=backend.admin_key,
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nothing listens: an order stays queued
        **extra,
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--check", "ok"] + ["--check", "x"] * 50, "--check"),  # 51 checks: over the limit
        (["--check", "  "], "--check"),
        (["--branch", "a..b"], "--branch"),
        (["--base", "main", "--branch", "main"], "--branch"),
        (["--repo", "relative/x"], "--repo"),
        (["--repo", "ext::sh -c id"], "--repo"),
        (["--repo", "http://github.com/a/b.git"], "--repo"),
        (["--repo", "https://tok@github.com/a/b.git"], "--repo"),
        (["--title", " "], "--title"),
    ],
    ids=[
        "51-checks",
        "blank-check",
        "dotdot-branch",
        "branch-is-base",
        "relative-repo",
        "transport-repo",
        "http-repo",
        "token-in-repo",
        "blank-title",
    ],
)
def test_submit_with_a_bad_argument_exits_2_and_writes_nothing(
    journaled: Journaled, tmp_path: Path, extra: list[str], named: str
) -> None:
    repo = make_bare_repo(tmp_path)
    args = ["submit", "--repo", str(repo), "--prompt", "Add a NOTES.md", *extra]
    before = journal(journaled)
    done = jangar(*args, env=journaled_env(journaled))
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert journal(journaled) == before, "a refused submit committed a transaction"


def test_submit_refused_by_convex_itself_exits_2_and_writes_nothing(
    journaled: Journaled, tmp_path: Path
) -> None:
    """An argument only Convex can judge (a session that is another user's): one mutation, so
    the refusal leaves no session, message or order behind."""
    repo = make_bare_repo(tmp_path)
    first = jangar(
        "submit",
        "--repo",
        str(repo),
        "--prompt",
        "first",
        "--user",
        "ada",
        "--json",
        env=journaled_env(journaled),
    )
    assert first.returncode == 0, first.stderr
    session = json.loads(first.stdout)["sessionId"]
    before = journal(journaled)
    for user, named in (("bob", "belongs to user"), ("ada", "--session")):
        args = ["--session", session if user == "bob" else "0000000000000099999chat_sessions"]
        done = jangar(
            "submit",
            "--repo",
            str(repo),
            "--prompt",
            "second",
            "--user",
            user,
            *args,
            env=journaled_env(journaled),
        )
        assert done.returncode == 2, done.stderr
        assert named in done.stderr and "Traceback" not in done.stderr
    assert journal(journaled) == before


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "--repo", ".", "--prompt", "x"],
        ["runs", "list"],
        ["repos", "list"],
        ["runs", "dashboard"],
        ["runs", "cancel", "0000000000000000000000000001runs"],
        ["runs", "retry", "0000000000000000000000000001runs"],
        ["runs", "logs", "0000000000000000000000000001runs", "--follow"],
        ["repos", "add", "https://github.com/a/b", "--max-tokens", "10"],
    ],
)
def test_operator_commands_without_the_key_exit_2_and_name_it(
    journaled: Journaled, command: list[str]
) -> None:
    before = journal(journaled)
    done = jangar(*command, env=clean_env(CONVEX_URL=journaled.url, TEMPORAL_ADDRESS="x:1"))
    assert done.returncode == 2, done.stderr
    assert "CONVEX_ADMIN_KEY" in done.stderr and "operator command" in done.stderr
    assert journal(journaled) == before


@pytest.mark.parametrize("command", ["cancel", "retry", "logs"])
@pytest.mark.parametrize("run_id", ["not-a-run-id", "0000000000000000000000099999runs"])
def test_runs_command_on_an_unknown_run_names_it_exits_2_and_writes_nothing(
    journaled: Journaled, command: str, run_id: str
) -> None:
    before = journal(journaled)
    done = jangar("runs", command, run_id, env=journaled_env(journaled))
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"jangar: RUN_ID: no run {run_id!r} (ids are listed by `jangar runs list`)"
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert journal(journaled) == before


def test_repos_add_list_remove(journaled: Journaled, tmp_path: Path) -> None:
    env = journaled_env(journaled)
    repo = make_bare_repo(tmp_path)
    added = jangar(
        "repos",
        "add",
        str(repo),
        "--check",
        "test -f NOTES.md",
        "--check",
        "true",
        "--base",
        "main",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"registered {repo} (2 check(s))"
    again = jangar("repos", "add", f"{repo}/", "--check", "true", env=env)
    assert again.stdout.strip() == f"updated {repo} (1 check(s))"
    url = "https://GitHub.com/acme/app.git"
    assert jangar("repos", "add", url, env=env).returncode == 0
    listed = jangar("repos", "list", "--json", env=env)
    entries = {e["url"]: e for e in json.loads(listed.stdout)}
    assert entries[str(repo)]["checks"] == ["true"] and "baseBranch" not in entries[str(repo)]
    assert entries["https://github.com/acme/app.git"]["checks"] == []
    table = jangar("repos", "list", env=env).stdout
    assert table.splitlines()[0].split() == [
        "URL", "BASE", "CHECKS", "NETWORK", "MAX-TOKENS", "MAX-MINUTES", "MAX-RUNS", "WEBHOOK"
    ]  # fmt: skip
    assert "https://github.com/acme/app.git" in table
    assert jangar("repos", "remove", "https://github.com/acme/app", env=env).stdout.strip() == (
        "removed https://github.com/acme/app"
    )
    gone = jangar("repos", "remove", "https://github.com/acme/app", env=env)
    assert gone.returncode == 0 and gone.stdout.startswith("not registered: ")
    assert "https://github.com/acme/app.git" not in jangar("repos", "list", env=env).stdout


def test_repos_add_stores_budgets_limits_network_and_webhook_and_list_shows_them(
    journaled: Journaled,
) -> None:
    env = journaled_env(journaled)
    url = "https://github.com/acme/budgeted.git"
    added = jangar(
        "repos", "add", url,
        "--max-tokens", "200000", "--max-agent-minutes", "30", "--max-concurrent-runs", "2",
        "--webhook", "https://hooks.example/jangar",
        "--no-agent-network", "--check-network",
        env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = jangar("repos", "list", "--json", env=env)
    entry = {e["url"]: e for e in json.loads(listed.stdout)}[url]
    assert {k: entry.get(k) for k in (
        "maxTokens", "maxAgentMinutes", "maxConcurrentRuns", "webhookUrl",
        "agentNetwork", "checkNetwork",
    )} == {
        "maxTokens": 200000, "maxAgentMinutes": 30, "maxConcurrentRuns": 2,
        "webhookUrl": "https://hooks.example/jangar", "agentNetwork": False, "checkNetwork": True,
    }  # fmt: skip
    table = jangar("repos", "list", env=env).stdout
    [row] = [line.split() for line in table.splitlines() if line.startswith(url)]
    assert row[1:] == ["-", "-", "checks", "200,000", "30", "2", "https://hooks.example/jangar"]

    # Adding it again replaces the entry: flags not given are back to their defaults.
    assert jangar("repos", "add", url, env=env).returncode == 0
    entry = {e["url"]: e for e in json.loads(jangar("repos", "list", "--json", env=env).stdout)}[
        url
    ]
    assert entry["agentNetwork"] is True and entry["checkNetwork"] is False
    assert not {"maxTokens", "maxAgentMinutes", "maxConcurrentRuns", "webhookUrl"} & set(entry)
    assert jangar("repos", "remove", url, env=env).returncode == 0
