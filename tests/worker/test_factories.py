"""Objects built from the settings (worker.factories): the Convex client and the job config."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker import factories
from worker.local.local_convex import RunningBackend
from worker.settings import load_settings


async def test_convex_client_from_settings_reaches_the_deployment_with_the_key(
    convex_backend: RunningBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONVEX_URL", "CONVEX_DEPLOYMENT", "CONVEX_DEPLOY_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVEX_SELF_HOSTED_URL", convex_backend.url)
    assert convex_backend.admin_key is not None
    monkeypatch.setenv("CONVEX_ADMIN_KEY", convex_backend.admin_key)
    monkeypatch.setenv("CONVEX_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("CONVEX_CONNECT_TIMEOUT_SECONDS", "2")
    async with factories.convex_client(load_settings()) as client:
        assert client.url == convex_backend.url
        timeout = client._http.timeout
        assert (timeout.connect, timeout.read, timeout.write) == (2.0, 3.0, 3.0)
        assert "local-backend" in await client.version()
        assert convex_backend.admin_key not in repr(client)
        # The key reached the server: an internal query answers.
        assert isinstance(await client.query("workOrders:listQueued", {"limit": 1}), list)


def test_job_config_carries_the_job_settings_of_the_worker(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        codex_command="codex exec --json",
        agent_timeout_seconds=12,
        check_timeout_seconds=34,
        git_timeout_seconds=56,
        worker_id="w-1",
        temporal_task_queue="q",
        github_token="ghp_x",
    )
    config = factories.job_config(settings)
    assert config.data_dir == tmp_path
    assert config.codex_command == ("codex", "exec", "--json")
    assert (config.agent_timeout_seconds, config.check_timeout_seconds) == (12, 34)
    assert config.git_timeout_seconds == 56
    assert config.worker_id == "w-1"
    assert config.github_token is not None and config.github_token.get_secret_value() == "ghp_x"
    assert "ghp_x" not in repr(config)


def test_job_config_carries_the_git_ca_file_for_the_workers_git(tmp_path: Path) -> None:
    from tests.standins.git_https import make_certificates

    ca = make_certificates(tmp_path / "certs").ca
    assert factories.job_config(load_settings(data_dir=tmp_path)).git_ca_file is None
    config = factories.job_config(load_settings(data_dir=tmp_path, git_ca_file=str(ca)))
    assert config.git_ca_file == ca.resolve()


def test_local_repositories_are_off_unless_the_operator_allows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JANGAR_ALLOW_LOCAL_REPOS", raising=False)
    assert factories.job_config(load_settings(data_dir=tmp_path)).allow_local_repos is False
    monkeypatch.setenv("JANGAR_ALLOW_LOCAL_REPOS", "true")
    assert factories.job_config(load_settings(data_dir=tmp_path)).allow_local_repos is True
