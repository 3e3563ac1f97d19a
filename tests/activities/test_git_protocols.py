"""Which transports the worker's git may use, and where the GitHub token goes.

git runs with ``GIT_ALLOW_PROTOCOL`` (https and ssh; ``file`` only where the operator allows
local repositories: ``JobConfig.allow_local_repos``, ``JANGAR_ALLOW_LOCAL_REPOS``), which git
applies over any configuration; the token travels only over https to the GitHub host.
These run real git against local bare repositories.
"""

from __future__ import annotations

import base64
import subprocess
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
from tests.git_repos import make_bare_repo
from tests.standins.git_https import GitHttpsStandin, make_certificates


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


def test_the_token_header_names_the_remotes_port_so_git_sends_it(tmp_path: Path) -> None:
    """git matches ``http.<url>.extraheader`` on the port too (an omitted one is 443): a
    GitHub Enterprise on another port gets the header only when the key names that port."""
    config = make_config(
        tmp_path, github_token="ghp_example", github_api_url="https://ghe.example:8443/api/v3"
    )
    remote = "https://ghe.example:8443/octo/widgets.git"
    env = git_env(config, remote)
    assert env["GIT_CONFIG_KEY_0"] == "http.https://ghe.example:8443/.extraheader"
    seen = subprocess.run(
        ["git", "config", "--get-urlmatch", "http.extraheader", remote],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert seen.stdout.strip() == env["GIT_CONFIG_VALUE_0"]
    other_port = "https://ghe.example:9443/octo/widgets.git"
    elsewhere = subprocess.run(
        ["git", "config", "--get-urlmatch", "http.extraheader", other_port],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert elsewhere.stdout == ""  # the header was made for the remote's own port only


def test_the_ca_file_reaches_the_workers_git_as_git_ssl_cainfo(tmp_path: Path) -> None:
    assert "GIT_SSL_CAINFO" not in git_env(make_config(tmp_path))
    ca = tmp_path / "ca.pem"
    env = git_env(make_config(tmp_path, git_ca_file=ca), "https://ghe.example/o/r.git")
    assert env["GIT_SSL_CAINFO"] == str(ca)


async def test_an_https_remote_behind_a_private_ca_needs_the_ca_file_and_gets_the_token(
    tmp_path: Path,
) -> None:
    """Real git over TLS to the stand-in git host (token required on every request): trusted
    only through ``git_ca_file``, and reached with the token as the GitHub host."""
    (tmp_path / "host" / "octo").mkdir(parents=True)
    make_bare_repo(tmp_path / "host" / "octo", "widgets")
    host = GitHttpsStandin(tmp_path / "host", make_certificates(tmp_path / "certs"), token="t0k")
    host.start()
    try:
        remote = host.url("octo", "widgets")
        workspace = tmp_path / "ws"
        workspace.mkdir()
        settings = {"github_token": "t0k", "github_api_url": f"https://127.0.0.1:{host.port}"}
        untrusted = make_config(tmp_path, allow_local_repos=False, **settings)
        with pytest.raises(ApplicationError) as caught:
            await run_git(["ls-remote", "--", remote], cwd=workspace, config=untrusted,
                          remote=remote)  # fmt: skip
        assert "certificate" in str(caught.value)
        assert host.requests == []  # refused at the TLS handshake: nothing was sent
        trusted = make_config(
            tmp_path, allow_local_repos=False, git_ca_file=host.certificates.ca, **settings
        )
        listed = await run_git(["ls-remote", "--", remote], cwd=workspace, config=trusted,
                               remote=remote)  # fmt: skip
        assert "refs/heads/main" in listed.stdout
        assert host.requests and all(r.authorized for r in host.requests)
        no_token = make_config(
            tmp_path,
            allow_local_repos=False,
            git_ca_file=host.certificates.ca,
            github_api_url=settings["github_api_url"],
        )
        with pytest.raises(ApplicationError) as denied:
            await run_git(["ls-remote", "--", remote], cwd=workspace, config=no_token,
                          remote=remote)  # fmt: skip
        assert denied.value.type == "RepositoryAccessDenied"
    finally:
        host.stop()


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
