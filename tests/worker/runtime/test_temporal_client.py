"""The Temporal connection settings: the SDK's standard names (temporalio.envconfig)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.runtime.temporal_client import connect_config
from worker.settings import SettingsError, load_settings


def test_defaults_without_any_setting() -> None:
    config = connect_config(load_settings(), env={})
    assert config["target_host"] == "localhost:7233"
    assert config["namespace"] == "default"
    assert "api_key" not in config and not config.get("tls")


def test_an_api_key_turns_tls_on_and_a_blank_one_counts_as_unset() -> None:
    keyed = connect_config(load_settings(), env={"TEMPORAL_API_KEY": "k-123"})
    assert keyed["api_key"] == "k-123" and keyed["tls"] is True
    # A Kubernetes Secret key left empty: neither an empty key nor TLS.
    blank = connect_config(load_settings(), env={"TEMPORAL_API_KEY": "  "})
    assert "api_key" not in blank and not blank.get("tls")


def test_mtls_files_are_read_and_must_come_in_pairs(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    env = {"TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert), "TEMPORAL_TLS_CLIENT_KEY_PATH": str(key)}
    tls = connect_config(load_settings(), env=env)["tls"]
    assert not isinstance(tls, bool)
    assert (tls.client_cert, tls.client_private_key) == (b"CERT", b"KEY")
    with pytest.raises(SettingsError, match="TEMPORAL_TLS_CLIENT_KEY_PATH"):
        connect_config(load_settings(), env={"TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert)})
    missing = {**env, "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "gone.pem")}
    with pytest.raises(SettingsError, match=r"TEMPORAL_TLS_\*: cannot read .*gone\.pem"):
        connect_config(load_settings(), env=missing)


def test_a_profile_file_is_read_and_the_worker_settings_win(tmp_path: Path) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text('[profile.default]\naddress = "cloud.example:7233"\nnamespace = "team"\n')
    env = {"TEMPORAL_CONFIG_FILE": str(profile)}
    from_file = connect_config(load_settings(), env=env)
    assert (from_file["target_host"], from_file["namespace"]) == ("cloud.example:7233", "team")
    # jangar dev points the settings at its own server: they take precedence.
    local = load_settings(temporal_address="127.0.0.1:7999", temporal_namespace="dev")
    pinned = connect_config(local, env=env)
    assert (pinned["target_host"], pinned["namespace"]) == ("127.0.0.1:7999", "dev")
