"""The job activities together: their registered names, a whole job through them in order
(prepare, agent, check, commit and push, pull request), the event parser's tolerance, and
git's credentials for GitHub remotes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio import activity

from activities.codex_events import ProgressCollector
from activities.gitcli import git_env
from activities.jobs import JobActivities
from activities.models import CommitAndPushInput, OpenPullRequestInput, RunCheckInput
from tests.activities.conftest import Prepared, RecordingEnvironment, make_config
from tests.git_repos import git


def test_activity_names_are_the_documented_ones(jobs: JobActivities) -> None:
    names = [activity._Definition.must_from_callable(fn).name for fn in jobs.all()]
    assert names == [
        "load_job",
        "prepare_workspace",
        "run_agent",
        "run_check",
        "commit_and_push",
        "open_pull_request",
        "notify",
    ]


async def test_a_whole_job_through_the_activities(
    activity_env: RecordingEnvironment, jobs: JobActivities, prepared: Prepared, remote: Path
) -> None:
    agent = await activity_env.run(jobs.run_agent, prepared.agent("Write a greeting"))
    check = await activity_env.run(
        jobs.run_check,
        RunCheckInput(state=agent.checkpoint, command="grep -q greeting NOTES.md", index=1),
    )
    commit = await activity_env.run(
        jobs.commit_and_push,
        CommitAndPushInput(
            state=agent.checkpoint, remote_branch_sha=prepared.workspace.remote_branch_sha
        ),
    )
    pr = await activity_env.run(
        jobs.open_pull_request,
        OpenPullRequestInput(
            repo=str(remote),
            branch=prepared.job.branch,
            base_branch=prepared.workspace.base_branch,
            title="Greeting",
        ),
    )
    assert agent.succeeded and check.passed and commit.changed and pr.skipped
    assert git("show", f"{commit.commit_sha}:NOTES.md", cwd=remote) == "- Write a greeting"


def test_event_parser_tolerates_odd_lines() -> None:
    collector = ProgressCollector()
    made = []
    for line in [
        "plain text",
        "{broken json",
        json.dumps([1, 2]),
        json.dumps({"no_type": True}),
        json.dumps({"type": "something.new", "payload": 1}),
        json.dumps({"type": "item.completed", "item": "not an object"}),
        json.dumps({"type": "item.completed", "item": {"type": "todo_list", "items": "x"}}),
        json.dumps({"type": "turn.completed", "usage": {"input_tokens": "many"}}),
        json.dumps({"type": "error", "message": "stream broke"}),
        json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": "done"}}),
    ]:
        made.append(collector.feed(line))
    assert collector.lines == 10 and collector.json_events == 6
    assert collector.failure == "stream broke"
    assert collector.final_message == "done"
    assert collector.usage is not None and collector.usage.input_tokens == 0
    summaries = [p for p in made if p is not None]
    assert [p.type for p in summaries] == [
        "item.completed",  # the todo list, odd as it is
        "turn.completed",
        "error",
        "item.completed",  # the agent's message
    ]
    assert [p.seq for p in summaries] == [2, 3, 4, 5]  # numbered among the JSON events


def test_github_token_reaches_git_only_for_the_github_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    config = make_config(tmp_path, github_token="ghp_example")
    env = git_env(config, "https://github.com/octo/widgets.git")
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    header = env["GIT_CONFIG_VALUE_0"].removeprefix("Authorization: Basic ")
    assert base64.b64decode(header).decode() == "x-access-token:ghp_example"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    for other in ("https://gitlab.example/o/r.git", "git@github.com:o/r.git", "/srv/r.git"):
        assert "GIT_CONFIG_COUNT" not in git_env(config, other), other
    assert "GITHUB_TOKEN" not in git_env(config, "https://github.com/o/r.git")
