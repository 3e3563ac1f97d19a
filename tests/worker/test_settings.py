"""The settings object: defaults, the seed's fallbacks, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.settings import DEFAULT_CONVEX_URL, SettingsError, load_settings

_VARS = (
    "CONVEX_URL",
    "CONVEX_DEPLOYMENT",
    "CONVEX_SELF_HOSTED_URL",
    "CONVEX_DEPLOY_KEY",
    "CONVEX_ADMIN_KEY",
    "TEMPORAL_ADDRESS",
    "MAX_CONCURRENT_ACTIVITIES",
    "JANGAR_CODEX_COMMAND",
    "JANGAR_CHECK_COMMANDS",
    "JANGAR_DATA_DIR",
    "JANGAR_GIT_AUTHOR_NAME",
    "JANGAR_SANDBOX",
    "JANGAR_SANDBOX_READ_ONLY",
    "TEMPORAL_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "JANGAR_GIT_CA_FILE",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.resolved_convex_url == DEFAULT_CONVEX_URL
    # The Temporal connection's defaults are the SDK's (worker.runtime.temporal_client).
    assert (settings.temporal_address, settings.temporal_namespace) == (None, None)
    assert settings.temporal_task_queue == "jangar"
    assert settings.convex_key is None


def test_convex_url_wins_over_self_hosted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEX_SELF_HOSTED_URL", "https://convex.example/http/")
    assert load_settings().resolved_convex_url == "https://convex.example/http"
    monkeypatch.setenv("CONVEX_URL", "https://happy-otter-123.convex.cloud")
    assert load_settings().resolved_convex_url == "https://happy-otter-123.convex.cloud"


def test_convex_deployment_name_gives_the_cloud_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEX_SELF_HOSTED_URL", "https://convex.example/http")
    monkeypatch.setenv("CONVEX_DEPLOYMENT", "dev:happy-otter-123")
    assert load_settings().resolved_convex_url == "https://happy-otter-123.convex.cloud"


def test_deploy_key_wins_over_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEX_ADMIN_KEY", "admin-secret")
    assert load_settings().convex_key is not None
    monkeypatch.setenv("CONVEX_DEPLOY_KEY", "deploy-secret")
    key = load_settings().convex_key
    assert key is not None and key.get_secret_value() == "deploy-secret"
    assert "deploy-secret" not in repr(load_settings())


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_ACTIVITIES", "zero")
    with pytest.raises(SettingsError, match="MAX_CONCURRENT_ACTIVITIES"):
        load_settings()


def test_bad_convex_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEX_URL", "convex.example")
    with pytest.raises(SettingsError, match=r"CONVEX_URL: .*http://"):
        load_settings()


def test_command_and_checks_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JANGAR_CODEX_COMMAND", "python3 'tests/my agent.py' --json")
    monkeypatch.setenv("JANGAR_CHECK_COMMANDS", "make lint\n\n  pytest -q  \n")
    settings = load_settings()
    assert settings.codex_command == ["python3", "tests/my agent.py", "--json"]
    assert settings.check_commands == ["make lint", "pytest -q"]


def test_only_documented_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """git's own GIT_AUTHOR_NAME must not become the job's commit author."""
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")
    monkeypatch.setenv("DATA_DIR", "/somewhere/else")
    settings = load_settings()
    assert settings.git_author_name == "Jangar"
    assert str(settings.data_dir) == ".jangar"
    monkeypatch.setenv("JANGAR_GIT_AUTHOR_NAME", "Bot")
    assert load_settings().git_author_name == "Bot"


def test_overrides_by_field_name_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JANGAR_DATA_DIR", "/from/env")
    assert str(load_settings(data_dir="/from/code").data_dir) == "/from/code"
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(no_such_setting=1)


def test_an_empty_secret_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "  ")
    monkeypatch.setenv("CONVEX_ADMIN_KEY", "")
    settings = load_settings()
    assert settings.github_token is None and settings.convex_key is None


def test_a_rejected_url_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEX_URL", "ftp://user:hunter2@host/x")
    with pytest.raises(SettingsError) as bad:
        load_settings()
    assert "CONVEX_URL" in str(bad.value) and "hunter2" not in str(bad.value)


def test_sandbox_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().sandbox == "bwrap"  # the safe default; off must be explicit
    monkeypatch.setenv("JANGAR_SANDBOX", "nsjail")
    with pytest.raises(SettingsError, match="JANGAR_SANDBOX"):
        load_settings()
    monkeypatch.setenv("JANGAR_SANDBOX", "off")
    monkeypatch.setenv("JANGAR_SANDBOX_READ_ONLY", "/opt/tool:/usr/local/x")
    settings = load_settings()
    assert settings.sandbox == "off"
    assert [str(p) for p in settings.sandbox_read_only] == ["/opt/tool", "/usr/local/x"]
    monkeypatch.setenv("JANGAR_SANDBOX_READ_ONLY", "relative/path")
    with pytest.raises(SettingsError, match="JANGAR_SANDBOX_READ_ONLY"):
        load_settings()


def test_every_setting_is_in_the_readme_table() -> None:
    """The environment table in README.md names every variable Settings reads, and no other:
    an operator reading it sees all the knobs there are."""
    import re
    from pathlib import Path

    from pydantic import AliasChoices

    from worker.runtime.temporal_client import TEMPORAL_ENV_NAMES
    from worker.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Environment variables", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)`", table, re.MULTILINE))
    documented |= set(re.findall(r"^\| `[A-Z_]+` \(or `([A-Z_]+)`\)", table, re.MULTILINE))
    documented |= set(re.findall(r"^\| `[A-Z_]+`, `([A-Z_]+)`", table, re.MULTILINE))
    read: set[str] = set(TEMPORAL_ENV_NAMES)  # the Temporal SDK reads these (envconfig)
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            read |= {str(choice) for choice in alias.choices}
        else:
            read.add(name.upper())
    assert read - documented == set(), "settings missing from README's table"
    assert documented - read == set(), "README's table names variables Settings does not read"


def test_git_ca_file_must_be_an_existing_pem_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Checked at start: a wrong path would otherwise fail every https clone far from here."""
    from tests.standins.git_https import make_certificates

    assert load_settings().git_ca_file is None
    monkeypatch.setenv("JANGAR_GIT_CA_FILE", "  ")
    assert load_settings().git_ca_file is None
    ca = make_certificates(tmp_path / "certs").ca
    monkeypatch.setenv("JANGAR_GIT_CA_FILE", str(ca))
    assert load_settings().git_ca_file == ca.resolve()
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate")
    for bad, says in (
        (tmp_path / "missing.pem", "existing PEM file"),
        (not_pem, "no PEM certificate"),
        (tmp_path, "existing PEM file"),
    ):
        monkeypatch.setenv("JANGAR_GIT_CA_FILE", str(bad))
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert "JANGAR_GIT_CA_FILE" in str(caught.value) and says in str(caught.value)
