"""Connecting to Temporal: one place for the address, namespace, TLS, API key and converter.

Every process (worker, dispatcher, CLI) connects through ``connect_temporal`` so they all speak
pydantic payloads and the same security settings. The connection settings are the SDK's own
(``temporalio.envconfig``: ``TEMPORAL_ADDRESS``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, a
``TEMPORAL_CONFIG_FILE`` profile), so the worker reads them exactly as the ``temporal`` CLI does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverter, PayloadConverter
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from worker.settings import Settings, SettingsError

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
TEMPORAL_ENV_NAMES = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_PROFILE",
)
"""The Temporal SDK's standard names (``temporalio.envconfig``) that the worker documents."""


class TemporalConnectError(RuntimeError):
    """Temporal could not be reached; the message names the address and its setting."""


def connect_config(settings: Settings, env: Mapping[str, str] | None = None) -> ClientConnectConfig:
    """``Client.connect`` arguments from the SDK's own configuration (``temporalio.envconfig``:
    the ``TEMPORAL_*`` variables, or a profile of ``TEMPORAL_CONFIG_FILE``), with the worker's
    settings deciding the address and namespace (``jangar dev`` points them at its own server).

    A blank ``TEMPORAL_API_KEY`` (a Kubernetes Secret key left empty) counts as unset, so it
    neither sends an empty key nor turns TLS on. Unreadable TLS files are a bad setting.
    """
    source = dict(os.environ if env is None else env)
    if not source.get("TEMPORAL_API_KEY", "set").strip():
        del source["TEMPORAL_API_KEY"]
    try:
        profile = ClientConfigProfile.load(override_env_vars=source)
    except (RuntimeError, ValueError) as exc:
        raise SettingsError(f"Temporal client configuration (TEMPORAL_*): {exc}") from None
    tls = profile.tls
    if tls is not None and (tls.client_cert is None) != (tls.client_private_key is None):
        raise SettingsError(
            "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH must be set"
            " together (mTLS)"
        )
    try:
        config = profile.to_client_connect_config()
    except OSError as exc:
        raise SettingsError(
            f"TEMPORAL_TLS_*: cannot read {exc.filename!r} ({exc.strerror}); check the TLS paths"
        ) from None
    address = settings.temporal_address or config.get("target_host") or DEFAULT_ADDRESS
    namespace = settings.temporal_namespace or config.get("namespace") or DEFAULT_NAMESPACE
    config["target_host"], config["namespace"] = address, namespace
    return config


async def check_namespace(client: Client) -> None:
    """Refuse to run against a namespace the server does not have (a bad setting, exit 2)."""
    request = DescribeNamespaceRequest(namespace=client.namespace)
    try:
        await client.workflow_service.describe_namespace(request)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise SettingsError(
            f"TEMPORAL_NAMESPACE: namespace {client.namespace!r} was not found on Temporal at "
            f"{client.service_client.config.target_host}"
        ) from None


class BoundedFailureConverter(DefaultFailureConverter):
    """Failures as Temporal records them: the classified error (type and message, bounded),
    with at most the end of a traceback and a short chain of causes.

    An activity retried for hours against an unreachable Convex records a failure per attempt;
    a full Python traceback with its chain of causes (7-8 KB each) made Temporal answer
    "Failure exceeds size limit" instead of showing the error. What an operator needs is the
    type and the message, which activities classify (``ApplicationError.type``).
    """

    MAX_MESSAGE = 2000
    MAX_STACK = 1500
    MAX_CAUSES = 2

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        current: Failure | None = failure
        depth = 0
        while current is not None:
            if len(current.message) > self.MAX_MESSAGE:
                current.message = current.message[: self.MAX_MESSAGE - 3] + "..."
            if len(current.stack_trace) > self.MAX_STACK:
                current.stack_trace = "..." + current.stack_trace[-self.MAX_STACK :]
            if not current.HasField("cause"):
                break
            if depth >= self.MAX_CAUSES:
                current.ClearField("cause")
                break
            current = current.cause
            depth += 1


DATA_CONVERTER = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=BoundedFailureConverter
)
"""Pydantic payloads and bounded failures: what every client and worker of Jangar uses."""


def worker_runtime(settings: Settings) -> Runtime:
    """The Temporal runtime of a worker process: the SDK core's own logs forwarded to Python
    logging (so they come out through the one structlog setup, JSON when LOG_FORMAT=json,
    instead of coloured text on stderr), and Prometheus metrics on METRICS_PORT (0: off)."""
    core_logger = logging.getLogger("temporalio.core")
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=core_logger),
    )
    metrics: PrometheusConfig | None = None
    if settings.metrics_port != 0:
        metrics = PrometheusConfig(bind_address=f"{settings.health_host}:{settings.metrics_port}")
    try:
        return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics))
    except ValueError as exc:  # the port is taken, or HEALTH_HOST is not an address
        address = f"{settings.health_host}:{settings.metrics_port}"
        raise SettingsError(
            f"METRICS_PORT: cannot serve metrics on {address} (HEALTH_HOST:METRICS_PORT): {exc}"
        ) from None


async def connect_temporal(
    settings: Settings, *, runtime: Runtime | None = None, identity: str | None = None
) -> Client:
    """Connect with the pydantic data converter and the SDK's standard configuration.

    Raises ``SettingsError`` for bad TLS settings and ``TemporalConnectError`` (naming
    TEMPORAL_ADDRESS) when the server cannot be reached.
    """
    config = connect_config(settings)
    try:
        return await Client.connect(
            **config,
            data_converter=DATA_CONVERTER,
            runtime=runtime,
            identity=identity or settings.worker_id,
        )
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        raise TemporalConnectError(
            f"cannot connect to Temporal at {config['target_host']} (TEMPORAL_ADDRESS, "
            f"namespace {config['namespace']}): {first}"
        ) from exc
