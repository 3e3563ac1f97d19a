"""Which transports the worker's git may use, and where the GitHub token goes.

git runs with ``GIT_ALLOW_PROTOCOL`` (https and ssh; ``file`` only where the operator allows
local repositories: ``JobConfig.allow_local_repos``, ``JANGAR_ALLOW_LOCAL_REPOS``), which git
applies over any configuration; the token travels only over https to the GitHub host.
These run real git against local bare repositories.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.gitcli import REPOSITORY_NOT_ALLOWED, git_env, run_git
from activities.gitsafe import allowed_protocols, hardening_args, hardening_env
from activities.jobs import JobActivities
from activities.models import PrepareWorkspaceInput
from activities.storage import FileStore
from tests.activities.conftest import RecordingEnvironment, job_spec, make_config, make_sandbox


def test_allowed_protocols_are_https_and_ssh_plus_file_when_enabled() -> None:
    assert allowed_protocols() == ("https", "ssh")
    assert allowed_protocols(allow_local=True) == ("https", "ssh", "file")
    assert hardening_env()["GIT_ALLOW_PROTOCOL"] == "https:ssh"
    assert hardening_env(allow_local=True)["GIT_ALLOW_PROTOCOL"] == "https:ssh:file"
    strict = " ".join(hardening_args())
    assert "protocol.https.allow=always" in strict and "protocol.ssh.allow=always" in strict
    assert "protocol.http.allow" not in strict and "protocol.file.allow" not in strict
    assert "protocol.file.allow=always" in " ".join(hardening_args(allow_local=True))


def test_git_env_follows_the_config(tmp_path: Path) -> None:
    assert git_env(make_config(tmp_path, allow_local_repos=False))["GIT_ALLOW_PROTOCOL"] == (
        "https:ssh"
    )
    assert git_env(make_config(tmp_path))["GIT_ALLOW_PROTOCOL"] == "https:ssh:file"


def test_the_token_goes_only_over_https_to_the_github_host(tmp_path: Path) -> None:
    config = make_config(tmp_path, github_token="ghp_example")
    env = git_env(config, "https://github.com/octo/widgets.git")
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    header = env["GIT_CONFIG_VALUE_0"].removeprefix("Authorization: Basic ")
    assert base64.b64decode(header).decode() == "x-access-token:ghp_example"
    for elsewhere in (
        "http://github.com/octo/widgets.git",  # plain http: never
        "https://github.com.evil.example/octo/widgets.git",
        "https://gitlab.example/octo/widgets.git",
        "ssh://git@github.com/octo/widgets.git",
        "git@github.com:octo/widgets.git",
        "/srv/octo/widgets.git",
    ):
        assert "GIT_CONFIG_COUNT" not in git_env(config, elsewhere), elsewhere
    assert "ghp_example" not in str(git_env(config, "http://github.com/octo/widgets.git"))


def activities_for(config: JobConfig, convex: ConvexClient) -> JobActivities:
    return JobActivities(
        config, convex=convex, sandbox=make_sandbox(config), files=FileStore(convex)
    )


async def test_a_local_repository_is_refused_unless_the_worker_allows_them(
    activity_env: RecordingEnvironment, tmp_path: Path, remote: Path, convex_client: ConvexClient
) -> None:
    strict = activities_for(make_config(tmp_path, allow_local_repos=False), convex_client)
    for repo in (str(remote), f"file://{remote}"):
        with pytest.raises(ApplicationError) as caught:
            await activity_env.run(
                strict.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo12", repo))
            )
        assert caught.value.type == REPOSITORY_NOT_ALLOWED and caught.value.non_retryable
        assert "JANGAR_ALLOW_LOCAL_REPOS" in str(caught.value)
    allowed = activities_for(make_config(tmp_path, allow_local_repos=True), convex_client)
    workspace = await activity_env.run(
        allowed.prepare_workspace, PrepareWorkspaceInput(job=job_spec("wo13", remote))
    )
    assert workspace.base_branch == "main"


@pytest.mark.parametrize("remote_form", ["ext::sh -c true", "fd::0", "file://{remote}"])
async def test_git_itself_refuses_other_transports_even_if_asked_directly(
    tmp_path: Path, remote: Path, remote_form: str
) -> None:
    """Below the input models: git run by the worker refuses ext::, fd:: and (without the
    setting) file://, whatever the repository's config says; the failure is typed and final."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    await run_git(["init", "-q"], cwd=workspace, config=make_config(tmp_path))
    config = make_config(tmp_path, allow_local_repos=False)
    target = remote_form.format(remote=remote)
    with pytest.raises(ApplicationError) as caught:
        # remote=None: no model and no pre-check in front, only git's own transport rules.
        await run_git(["ls-remote", "--", target], cwd=workspace, config=config, remote=None)
    assert "not allowed" in str(caught.value) or "transport" in str(caught.value)
    # Classified when the command talks to a remote: final, not retried.
    with pytest.raises(ApplicationError) as typed:
        await run_git(
            ["ls-remote", "--", target],
            cwd=workspace,
            config=config,
            remote="https://example.invalid/o/r.git",
        )
    assert typed.value.type == REPOSITORY_NOT_ALLOWED and typed.value.non_retryable
