"""Human output: tables, the live view's lines and the timeline's short file names."""

from __future__ import annotations

from typing import Any

from worker.cli.render import (
    common_dir,
    dashboard_text,
    live_step_line,
    relative_to,
    repositories_table,
    runs_table,
    timeline_text,
)

RUN_DIR = "file:///home/dev/.jangar/artifacts/work-order-abc/01a2-run"


def _timeline(**run: Any) -> dict[str, Any]:
    return {
        "run": {
            "_id": "run1",
            "status": "failed",
            "repo": "/srv/repo.git",
            "branch": "codex/abc",
            "startedAt": 1_700_000_000_000,
            "endedAt": 1_700_000_003_500,
            "failureReason": {"step": "check 1: false", "type": "CheckFailed", "message": "exit 1"},
            **run,
        },
        "workOrder": {"_id": "abc"},
        "steps": [
            {"name": "prepare_workspace", "kind": "activity", "status": "succeeded"},
            {
                "name": "run_agent",
                "kind": "activity",
                "status": "succeeded",
                "startedAt": 1_700_000_000_000,
                "endedAt": 1_700_000_001_250,
                "logUrl": f"{RUN_DIR}/agent.log",
            },
            {
                "name": "check 1: false",
                "kind": "check",
                "status": "failed",
                "logUrl": f"{RUN_DIR}/checks/check-001.log",
            },
        ],
        "artifacts": [
            {"type": "log", "label": "agent log", "url": f"{RUN_DIR}/agent.log"},
            {"type": "diff", "label": "diff", "url": f"{RUN_DIR}/diff.patch"},
            {"type": "pr", "label": "pull request", "url": "https://github.com/a/b/pull/7"},
        ],
        "events": [
            {"type": "state_change", "createdAt": 1_700_000_000_000, "data": {"status": "running"}},
            {"type": "system", "createdAt": 1_700_000_000_100, "data": {"message": "hello"}},
        ],
    }


def test_timeline_prints_the_run_directory_once_and_files_relative_to_it() -> None:
    text = timeline_text(_timeline())
    assert f"  files: {RUN_DIR}/" in text.splitlines()
    assert text.count(RUN_DIR) == 1
    assert "agent.log" in text and "checks/check-001.log" in text
    assert "  diff       diff: diff.patch" in text.splitlines()
    assert "  pr         pull request: https://github.com/a/b/pull/7" in text.splitlines()
    assert "  failure: check 1: false: exit 1" in text.splitlines()
    assert "took 3.5s" in text


def test_step_table_columns_line_up() -> None:
    lines = timeline_text(_timeline()).splitlines()
    start = lines.index("steps:") + 1
    header, rule, *rows = lines[start : start + 5]
    assert header.split() == ["#", "STEP", "KIND", "STATUS", "TOOK", "LOG"]
    log_column = header.index("LOG")
    assert rows[1][log_column:] == "agent.log"
    assert rows[2][log_column:] == "checks/check-001.log"
    assert rows[1][header.index("TOOK") :].startswith("1.2s")  # 1.25 s, one decimal
    assert set(rule.replace(" ", "")) == {"-"}


def test_common_dir_needs_a_real_directory() -> None:
    assert common_dir([f"{RUN_DIR}/agent.log", f"{RUN_DIR}/checks/c.log"]) == RUN_DIR
    assert common_dir(["https://h.example/a/b/x.log", "https://h.example/a/c/y.log"]) == (
        "https://h.example/a"
    )
    assert common_dir(["file:///a/x.log", "file:///b/y.log"]) is None  # only "file://"
    assert common_dir(["https://h.example/x.log", "https://other.example/y.log"]) is None
    assert common_dir([]) is None
    assert relative_to(f"{RUN_DIR}/agent.log", RUN_DIR) == "agent.log"
    assert relative_to("https://elsewhere/x", RUN_DIR) == "https://elsewhere/x"
    assert relative_to(None, RUN_DIR) is None


def test_timeline_shows_the_chain_of_a_follow_up_and_of_a_retry() -> None:
    plain = timeline_text(_timeline())
    assert "follow-up of" not in plain and "retry of" not in plain
    timeline = _timeline()
    timeline["workOrder"] = {"_id": "abc", "parentWorkOrderId": "p1", "retryOfWorkOrderId": "r1"}
    text = timeline_text(timeline)
    assert "follow-up of work order p1" in text and "retry of work order r1" in text


def test_timeline_without_files_prints_no_files_line() -> None:
    timeline = _timeline()
    timeline["steps"] = [s for s in timeline["steps"] if "logUrl" not in s]
    timeline["artifacts"] = []
    assert "files:" not in timeline_text(timeline)


def test_live_step_line_shows_duration_only_once_ended() -> None:
    assert live_step_line({"name": "run_agent", "status": "running", "startedAt": 1}) == (
        "  [  running] run_agent"
    )
    ended = {"name": "run_agent", "status": "succeeded", "startedAt": 0, "endedAt": 2500}
    assert live_step_line(ended) == "  [succeeded] run_agent  (2.5s)"


def test_runs_table_has_one_row_per_run_with_dashes_for_missing_values() -> None:
    text = runs_table(
        [
            {"_id": "r1", "status": "running", "repo": "/a.git", "branch": "codex/1"},
            {
                "_id": "r2",
                "status": "succeeded",
                "repo": "/b.git",
                "branch": "codex/2",
                "startedAt": 1_700_000_000_000,
                "endedAt": 1_700_000_180_000,
                "prUrl": "https://github.com/a/b/pull/1",
            },
        ]
    )
    header, _, first, second, _, total = text.splitlines()
    assert header.split()[:2] == ["RUN", "STATUS"]
    assert first.split() == ["r1", "running", "/a.git", "codex/1", *["-"] * 7]
    assert second.split()[-6:] == ["3.0m", "-", "-", "-", "-", "https://github.com/a/b/pull/1"]
    assert second.split()[4:6] == ["2023-11-14", "22:13:20"]
    assert total.split() == ["total", "(2", "runs)", "0", "0", "0", "0.0s"]


def test_runs_table_shows_each_runs_usage_and_their_totals() -> None:
    runs: list[dict[str, Any]] = [
        {"_id": "r1", "status": "succeeded", "inputTokens": 1200, "cachedInputTokens": 200,
         "outputTokens": 42, "agentMs": 1500},
        {"_id": "r2", "status": "failed", "inputTokens": 98_765, "cachedInputTokens": 0,
         "outputTokens": 4321, "agentMs": 150_000},
        {"_id": "r3", "status": "running"},
    ]  # fmt: skip
    lines = runs_table(runs).splitlines()
    header = lines[0].split()
    assert header[6:10] == ["IN", "CACHED", "OUT", "AGENT"]
    column = lines[0].index("IN")
    assert lines[2][column:].split()[:4] == ["1,200", "200", "42", "1.5s"]
    assert lines[3][column:].split()[:4] == ["98,765", "0", "4,321", "2.5m"]
    assert lines[4][column:].split()[:4] == ["-", "-", "-", "-"]
    assert set(lines[5].replace(" ", "")) == {"-"}  # the rule before the totals
    assert lines[6].startswith("total (3 runs)")
    assert lines[6][column:].split() == ["99,965", "200", "4,363", "2.5m"]


def test_dashboard_shows_counts_usage_totals_and_recent_runs() -> None:
    text = dashboard_text(
        {
            "counts": {"queued": 1, "running": 2, "succeeded": 3, "failed": 0, "canceled": 4},
            "recent": [{"_id": "r1", "status": "running", "outputTokens": 10}],
            "usage": {
                "inputTokens": 12345,
                "cachedInputTokens": 45,
                "outputTokens": 678,
                "agentMs": 61_000,
            },
        }
    )
    lines = text.splitlines()
    assert lines[0] == "runs: 1 queued, 2 running, 3 succeeded, 0 failed, 4 canceled"
    assert lines[1] == (
        "usage, all runs: input 12,345 tokens (45 cached), output 678 tokens, agent time 61.0s"
    )
    assert lines[3] == "1 most recent runs:"
    assert lines[4].split()[0] == "RUN" and "r1" in text


def test_repositories_table_shows_network_budgets_limits_and_webhook() -> None:
    lines = repositories_table(
        [
            {
                "url": "https://github.com/a/b",
                "checks": ["make test"],
                "agentNetwork": True,
                "checkNetwork": False,
                "maxTokens": 250000,
                "maxAgentMinutes": 30,
                "maxConcurrentRuns": 2,
                "webhookUrl": "https://hooks.example/j",
            },
            {"url": "/srv/c.git", "checks": [], "agentNetwork": False, "checkNetwork": False},
        ]
    ).splitlines()
    assert lines[0].split() == [
        "URL", "BASE", "CHECKS", "NETWORK", "MAX-TOKENS", "MAX-MINUTES", "MAX-RUNS", "WEBHOOK"
    ]  # fmt: skip
    assert lines[2].split() == [
        "https://github.com/a/b", "-", "make", "test", "agent", "250,000", "30", "2",
        "https://hooks.example/j",
    ]  # fmt: skip
    assert lines[3].split() == ["/srv/c.git", "-", "-", "none", "-", "-", "-", "-"]
