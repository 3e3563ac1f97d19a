"""open_pull_request against the stand-in GitHub API served by the test: create, find on retry
(one POST), the 422 race, skips without a token or for non-GitHub remotes, and the error
classification (401/404/422 non-retryable; 500, 429 and network retryable)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.models import OpenPullRequestInput
from tests.activities.conftest import RecordingEnvironment, make_config, make_sandbox
from tests.standins.github_api import GitHubApiStandin

# open_pull_request never calls Convex: a client for a port nothing listens on proves it.
OFFLINE_CONVEX = ConvexClient("http://127.0.0.1:9")


@pytest.fixture
def github() -> Iterator[GitHubApiStandin]:
    standin = GitHubApiStandin(token="test-token")
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


def jobs_for(
    tmp_path: Path, github: GitHubApiStandin, token: str | None = "test-token"
) -> JobActivities:
    config = make_config(tmp_path, github_api_url=github.url, github_token=token)
    return JobActivities(config, convex=OFFLINE_CONVEX, sandbox=make_sandbox(config))


def pr_input(github: GitHubApiStandin, repo: str = "octo/widgets") -> OpenPullRequestInput:
    # The remote lives on the host the API serves (127.0.0.1 for the stand-in); git remotes
    # are https (the stand-in API itself answers plain http).
    return OpenPullRequestInput(
        repo=f"{github.url.replace('http://', 'https://')}/{repo}.git",
        branch="codex/wo1",
        base_branch="main",
        title="Add a greeting",
        body="Asked in chat.",
    )


async def test_creates_the_pull_request(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    result = await activity_env.run(jobs_for(tmp_path, github).open_pull_request, pr_input(github))
    assert not result.skipped and result.created
    assert result.number == 1 and result.repository == "octo/widgets"
    assert result.url == "https://github.example/octo/widgets/pull/1"
    listing, post = github.requests
    assert (listing.method, listing.path) == ("GET", "/repos/octo/widgets/pulls")
    assert listing.query["head"] == "octo:codex/wo1" and listing.query["state"] == "open"
    assert post.body == {
        "title": "Add a greeting",
        "head": "codex/wo1",
        "base": "main",
        "body": "Asked in chat.",
        "draft": False,
    }
    assert {r.authorization for r in github.requests} == {"Bearer test-token"}


async def test_retry_finds_the_open_one_without_a_second_post(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    jobs = jobs_for(tmp_path, github)
    first = await activity_env.run(jobs.open_pull_request, pr_input(github))
    second = await activity_env.run(jobs.open_pull_request, pr_input(github))
    assert first.created and not second.created
    assert (second.number, second.url) == (first.number, first.url)
    assert len(github.posts()) == 1
    assert len(github.pulls["octo/widgets"]) == 1


async def test_already_exists_race_lists_again(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    github.race_on_create = True
    result = await activity_env.run(jobs_for(tmp_path, github).open_pull_request, pr_input(github))
    assert not result.skipped and not result.created and result.number == 1
    assert [r.method for r in github.requests] == ["GET", "POST", "GET"]


async def test_no_token_skips_without_calling_github(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    result = await activity_env.run(
        jobs_for(tmp_path, github, token=None).open_pull_request, pr_input(github)
    )
    assert result.skipped and result.url is None
    assert "GITHUB_TOKEN" in (result.reason or "")
    assert github.requests == []


@pytest.mark.parametrize(
    "repo", ["/srv/git/widgets.git", "https://gitlab.example/octo/widgets.git"]
)
async def test_non_github_remote_is_skipped(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path, repo: str
) -> None:
    inp = OpenPullRequestInput(repo=repo, branch="codex/wo1", base_branch="main", title="t")
    result = await activity_env.run(jobs_for(tmp_path, github).open_pull_request, inp)
    assert result.skipped and "not a GitHub repository" in (result.reason or "")
    assert github.requests == []


async def test_bad_token_is_not_retryable_and_not_echoed(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    jobs = jobs_for(tmp_path, github, token="wrong-token-value")
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs.open_pull_request, pr_input(github))
    assert caught.value.type == "GitHubUnauthorized" and caught.value.non_retryable
    assert "GITHUB_TOKEN" in caught.value.message
    assert "wrong-token-value" not in str(caught.value)


async def test_unknown_repository_is_not_retryable(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(
            jobs_for(tmp_path, github).open_pull_request, pr_input(github, "octo/missing")
        )
    assert caught.value.type == "GitHubNotFound" and caught.value.non_retryable


async def test_validation_failure_is_not_retryable(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    inp = pr_input(github).model_copy(update={"branch": "main"})
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs_for(tmp_path, github).open_pull_request, inp)
    assert caught.value.type == "GitHubValidationFailed" and caught.value.non_retryable
    assert "No commits between main and main" in caught.value.message


async def test_server_error_is_retryable_and_the_retry_succeeds(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    jobs = jobs_for(tmp_path, github)
    github.fail_next = [500]
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs.open_pull_request, pr_input(github))
    assert caught.value.type == "GitHubUnavailable" and not caught.value.non_retryable
    result = await activity_env.run(jobs.open_pull_request, pr_input(github))
    assert result.created and len(github.posts()) == 1


async def test_rate_limit_is_retryable(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    github.fail_next = [429]
    with pytest.raises(ApplicationError) as caught:
        await activity_env.run(jobs_for(tmp_path, github).open_pull_request, pr_input(github))
    assert caught.value.type == "GitHubRateLimited" and not caught.value.non_retryable


async def test_unreachable_api_is_retryable(
    activity_env: RecordingEnvironment, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = f"http://127.0.0.1:{port}"
    config = make_config(tmp_path, github_api_url=api, github_token="t")
    inp = OpenPullRequestInput(
        repo=f"https://127.0.0.1:{port}/octo/widgets.git",
        branch="codex/x",
        base_branch="main",
        title="t",
    )
    with pytest.raises(ApplicationError) as caught:
        jobs = JobActivities(config, convex=OFFLINE_CONVEX, sandbox=make_sandbox(config))
        await activity_env.run(jobs.open_pull_request, inp)
    assert caught.value.type == "GitHubUnavailable" and not caught.value.non_retryable


async def test_an_open_pull_request_gets_the_new_title_and_body_once(
    activity_env: RecordingEnvironment, github: GitHubApiStandin, tmp_path: Path
) -> None:
    """A follow-up continues the branch: its pull request is updated, never a second one."""
    github.add_pull("octo/widgets", head="codex/wo1", base="main", title="first request")
    jobs = jobs_for(tmp_path, github)
    inp = pr_input(github).model_copy(update={"title": "whole change", "body": "1. a\n2. b"})
    result = await activity_env.run(jobs.open_pull_request, inp)
    assert result.updated and not result.created and result.number == 1
    pull = github.pulls["octo/widgets"][0]
    assert (pull["title"], pull["body"]) == ("whole change", "1. a\n2. b")
    again = await activity_env.run(jobs.open_pull_request, inp)
    assert not again.updated  # nothing to change: no second edit
    assert len(github.pulls["octo/widgets"]) == 1
    assert [r.method for r in github.requests].count("PATCH") == 1


async def test_a_github_enterprise_behind_a_private_ca_is_trusted_only_through_the_setting(
    activity_env: RecordingEnvironment, tmp_path: Path
) -> None:
    """The API client trusts JANGAR_GIT_CA_FILE's bundle, as the worker's git does: without
    it the private CA's certificate is refused (nothing posted), with it the PR is created."""
    from tests.standins.git_https import make_certificates

    certs = make_certificates(tmp_path / "certs")
    standin = GitHubApiStandin(token="test-token", tls=(certs.server_cert, certs.server_key))
    standin.start()
    try:
        inp = pr_input(standin)
        with pytest.raises(ApplicationError) as refused:
            await activity_env.run(jobs_for(tmp_path, standin).open_pull_request, inp)
        assert refused.value.type == "GitHubUnavailable" and not standin.posts()
        config = make_config(
            tmp_path,
            github_api_url=standin.url,
            github_token="test-token",
            git_ca_file=certs.ca,
        )
        trusting = JobActivities(config, convex=OFFLINE_CONVEX, sandbox=make_sandbox(config))
        result = await activity_env.run(trusting.open_pull_request, inp)
        assert result.created and len(standin.posts()) == 1
    finally:
        standin.stop()
