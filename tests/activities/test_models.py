"""The job models: validation that matches git's own rules, clear messages, no leaked secrets,
and a clean trip through Temporal's pydantic data converter."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.models import (
    AgentResult,
    Exchange,
    JobLimits,
    JobSpec,
    OpenPullRequestInput,
    StoredFile,
    WorkspaceState,
    check_branch_name,
)
from activities.repo_url import (
    classify_repo,
    github_web_host,
    parse_github_repo,
    redact_text,
    redact_url,
)


def job(**fields: Any) -> JobSpec:
    """A job with valid fields, ``fields`` replacing some."""
    values: dict[str, Any] = {
        "work_order_id": "w1",
        "repo": "/srv/repo.git",
        "branch": "codex/w1",
        "prompt": "Write a greeting",
        "title": "t",
    }
    values.update(fields)
    return JobSpec(**values)


BRANCH_NAMES = [
    "main",
    "codex/abc123",
    "feature/x.y",
    "a-b_c",
    "v1.2",
    "deep/nested/name",
    "-leading-dash",
    "has space",
    "a..b",
    "ends.",
    "ends/",
    "/starts",
    "double//slash",
    "x.lock",
    "dir.lock/x",
    ".hidden",
    "dir/.hidden",
    "tilde~1",
    "caret^",
    "colon:x",
    "quest?",
    "star*",
    "bracket[",
    "back\\slash",
    "at@{brace",
    "@",
    "HEAD",
    "tab\tname",
    "ok@name",
]


@pytest.mark.parametrize("name", BRANCH_NAMES)
def test_branch_rules_agree_with_git(name: str) -> None:
    """Our check accepts exactly what `git check-ref-format --branch` accepts."""
    git_says_ok = (
        subprocess.run(
            ["git", "check-ref-format", "--branch", name], capture_output=True, check=False
        ).returncode
        == 0
    )
    try:
        check_branch_name(name)
        ours = True
    except ValueError:
        ours = False
    # In a repository git resolves "@" (and may accept "HEAD"); we refuse both deliberately.
    if name in ("@", "HEAD"):
        assert not ours
    else:
        assert ours == git_says_ok, f"{name!r}: git={git_says_ok} ours={ours}"


def test_branch_error_says_why() -> None:
    with pytest.raises(ValidationError, match=r"contains '\.\.'.*check-ref-format"):
        job(branch="a..b")


@pytest.mark.parametrize(
    ("repo", "kind"),
    [
        ("https://github.com/octo/widgets.git", "https"),
        ("https://git.local:8080/team/repo", "https"),
        ("ssh://git@github.com/octo/widgets.git", "ssh"),
        ("git@github.com:octo/widgets.git", "ssh"),
        ("file:///srv/git/repo.git", "file"),
        ("/srv/git/repo.git", "local"),
    ],
)
def test_repo_forms_accepted(repo: str, kind: str) -> None:
    assert classify_repo(repo) == kind
    job(repo=repo)


@pytest.mark.parametrize(
    "repo",
    [
        "relative/path",
        "ftp://host/x",
        "https://",
        "--upload-pack=evil",
        "https://h/",
        " /x",
        "",
        "http://git.local/team/repo",  # git runs over https and ssh only
        "ext::sh -c id",
    ],
)
def test_repo_forms_refused(repo: str) -> None:
    with pytest.raises(ValidationError, match="repo"):
        job(repo=repo)


def test_validation_errors_never_echo_a_token() -> None:
    with pytest.raises(ValidationError) as caught:
        job(work_order_id="bad id!", repo="https://user:s3cr3t-token@github.com/o/r.git")
    assert "s3cr3t-token" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        job(repo="ftp://user:s3cr3t-token@host/x")
    assert "s3cr3t-token" not in str(caught.value)


def test_the_work_branch_must_differ_from_the_base_and_prompts_have_no_nul() -> None:
    with pytest.raises(ValidationError, match="also the base branch"):
        job(base_branch="x", branch="x")
    with pytest.raises(ValidationError, match="NUL"):
        job(prompt="fix\x00it")
    with pytest.raises(ValidationError, match="check command"):
        job(checks=("make\x00test",))
    with pytest.raises(ValidationError, match="blank"):
        job(prompt="   ")


def test_limits_must_be_positive_and_states_carry_full_shas() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        JobLimits(agent_timeout_seconds=0)
    with pytest.raises(ValidationError, match="greater than 0"):
        JobLimits(max_tokens=0)
    with pytest.raises(ValidationError, match="pattern"):
        WorkspaceState(
            work_order_id="w1", repo="/r", branch="b", base_sha="abc", commit_sha="a" * 40
        )
    with pytest.raises(ValidationError, match="Extra inputs"):
        OpenPullRequestInput.model_validate(
            {"repo": "/r", "branch": "b", "base_branch": "main", "title": "t", "surprise": 1}
        )


def test_a_follow_up_prompt_carries_the_conversation_and_stays_bounded() -> None:
    follow = job(
        prompt="Also say goodbye",
        conversation=(Exchange(prompt="Add a greeting", final_message="Added it."),),
    )
    text = follow.agent_prompt()
    assert text.index("Add a greeting") < text.index("Added it.") < text.index("Also say goodbye")
    assert job().agent_prompt() == "Write a greeting"
    huge = job(conversation=tuple(Exchange(prompt="x" * 90_000) for _ in range(3)))
    assert len(huge.agent_prompt()) <= 100_000
    assert huge.agent_prompt().endswith("Write a greeting")


def test_redaction() -> None:
    assert redact_url("https://x-access-token:tok@github.com/o/r.git") == (
        "https://github.com/o/r.git"
    )
    assert redact_url("https://tok@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("ssh://git:pw@host:2222/o/r.git") == "ssh://git@host:2222/o/r.git"
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert redact_url("https://h/o/r.git?access_token=abc") == "https://h/o/r.git"
    text = "fatal: unable to access 'https://user:hunter22@h/o/r.git/': failed"
    assert "hunter22" not in redact_text(text)
    assert "hunter22" not in redact_text("token hunter22 echoed", "https://user:hunter22@h/o/r")


def test_github_repository_parsing() -> None:
    assert github_web_host("https://api.github.com") == "github.com"
    assert github_web_host("https://ghe.example/api/v3") == "ghe.example"
    for url in (
        "https://github.com/octo/widgets.git",
        "https://tok@github.com/octo/widgets",
        "git@github.com:octo/widgets.git",
        "ssh://git@github.com/octo/widgets.git",
        "https://GitHub.com/octo/widgets/",
    ):
        assert parse_github_repo(url, "github.com") == ("octo", "widgets"), url
    for url in (
        "https://gitlab.com/octo/widgets.git",
        "/srv/octo/widgets.git",
        "file:///srv/octo/widgets.git",
        "https://github.com/octo/widgets/extra",
    ):
        assert parse_github_repo(url, "github.com") is None, url


def agent_result(**fields: Any) -> AgentResult:
    values: dict[str, Any] = {
        "outcome": "failed",
        "succeeded": False,
        "exit_code": 3,
        "timed_out": False,
        "failure_reason": "the agent exited 3",
        "log": StoredFile(storage_id="kg2-log", bytes=10),
        "checkpoint": WorkspaceState(
            work_order_id="w1", repo="/r", branch="b", base_sha="a" * 40, commit_sha="a" * 40
        ),
        "events_recorded": 1,
        "events_dropped": 0,
        "lines": 4,
        "json_events": 1,
        "duration_ms": 12,
    }
    values.update(fields)
    return AgentResult(**values)


def test_results_survive_the_pydantic_data_converter() -> None:
    result = agent_result()
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([result])
    (back,) = converter.from_payloads(payloads, [AgentResult])
    assert back == result


# --- how each result is recorded (step_record) ------------------------------------------------


def test_a_failed_agent_is_recorded_failed_with_its_reason_exit_code_and_log() -> None:
    agent = agent_result(lines=7, json_events=2, final_message="done " * 800)
    record = agent.step_record()
    assert record.status == "failed"
    assert record.log_storage_id == "kg2-log"
    assert record.payload is not None
    assert record.payload["message"] == "the agent exited 3"
    assert record.payload["exitCode"] == 3
    assert (record.payload["lines"], record.payload["jsonEvents"]) == (7, 2)
    assert len(record.payload["finalMessage"]) == 2000


def test_a_timed_out_check_keeps_a_null_exit_code_and_its_output_tail() -> None:
    from activities.models import CheckResult

    check = CheckResult(
        index=1,
        command="pytest -q",
        passed=False,
        exit_code=None,
        timed_out=True,
        duration_ms=10,
        output_tail="x" * 3000,
    )
    record = check.step_record()
    assert record.status == "failed"
    assert record.payload is not None
    assert "exitCode" in record.payload and record.payload["exitCode"] is None
    assert record.payload["timedOut"] is True
    assert len(record.payload["outputTail"]) == 1000
    passed = check.model_copy(update={"passed": True, "exit_code": 0, "timed_out": False})
    assert passed.step_record().status == "succeeded"
    assert "outputTail" not in (passed.step_record().payload or {})


def test_a_skipped_pull_request_and_an_unchanged_commit_say_why() -> None:
    from activities.models import CommitResult, PullRequestResult

    skipped = PullRequestResult(skipped=True, reason="no GitHub token").step_record()
    assert (skipped.status, skipped.payload) == ("skipped", {"reason": "no GitHub token"})
    unchanged = CommitResult(
        changed=False,
        reason="the agent made no changes",
        pushed=False,
        branch="b",
        base_sha="a" * 40,
        commit_sha=None,
    ).step_record()
    assert unchanged.status == "succeeded"
    assert unchanged.payload == {
        "changed": False,
        "commitSha": None,
        "reason": "the agent made no changes",
    }
