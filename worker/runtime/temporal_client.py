"""Connecting to Temporal: one place for the address, namespace, TLS, API key and converter.

Every process (worker, dispatcher, CLI) connects through ``connect_temporal`` so they all speak
pydantic payloads and the same security settings.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from worker.settings import Settings, SettingsError


class TemporalConnectError(RuntimeError):
    """Temporal could not be reached; the message names the address and its setting."""


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for Temporal Cloud or a secured cluster: mTLS files when given, else plain TLS."""
    cert, key = settings.temporal_tls_cert_path, settings.temporal_tls_key_path
    if (cert is None) != (key is None):
        raise SettingsError(
            "TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together (mTLS)"
        )
    if cert is not None and key is not None:
        for name, path in (("TEMPORAL_TLS_CERT_PATH", cert), ("TEMPORAL_TLS_KEY_PATH", key)):
            if not path.is_file():
                raise SettingsError(f"{name}: no such file {str(path)!r}")
        return TLSConfig(client_cert=cert.read_bytes(), client_private_key=key.read_bytes())
    # An API key (Temporal Cloud) always travels over TLS.
    return settings.temporal_tls or settings.temporal_api_key is not None


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting Prometheus metrics on METRICS_PORT (0 turns them off)."""
    if settings.metrics_port == 0:
        return None
    address = f"{settings.health_host}:{settings.metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as exc:  # the port is taken, or HEALTH_HOST is not an address
        raise SettingsError(
            f"METRICS_PORT: cannot serve metrics on {address} (HEALTH_HOST:METRICS_PORT): {exc}"
        ) from None


async def connect_temporal(
    settings: Settings, *, runtime: Runtime | None = None, identity: str | None = None
) -> Client:
    """Connect with the pydantic data converter, TLS and API key from settings.

    Raises ``SettingsError`` for inconsistent TLS settings and ``TemporalConnectError`` (naming
    TEMPORAL_ADDRESS) when the server cannot be reached.
    """
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    tls = tls_config(settings)
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            api_key=api_key,
            tls=tls,
            data_converter=pydantic_data_converter,
            runtime=runtime,
            identity=identity or settings.worker_id,
        )
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        raise TemporalConnectError(
            f"cannot connect to Temporal at {settings.temporal_address} (TEMPORAL_ADDRESS, "
            f"namespace {settings.temporal_namespace}): {first}"
        ) from exc
