"""The one logging setup: structlog, JSON lines by default, stdlib logs routed through it.

Temporal's own loggers (``temporalio.*``) and the activity/workflow loggers go through the same
processors, so every line is one JSON object carrying workflow id, run id and activity type when
they are known: ``worker.runtime.log_context`` binds them for every activity, and Temporal's own
loggers attach them as extras, which ``_flatten_temporal`` lifts to the top level.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")


def _redact_secrets(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Belt and braces: a field whose name says it is a secret never reaches the output."""
    for name in list(event_dict):
        lowered = name.lower()
        if any(word in lowered for word in _SECRET_WORDS) and name != "idempotency_key":
            event_dict[name] = "<redacted>"
    return event_dict


def _flatten_temporal(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Lift the ids Temporal's loggers attach as extras into top-level fields."""
    for extra in ("temporal_workflow", "temporal_activity"):
        info = event_dict.pop(extra, None)
        if isinstance(info, dict):
            event_dict.setdefault("workflow_id", info.get("workflow_id"))
            event_dict.setdefault("run_id", info.get("run_id") or info.get("workflow_run_id"))
            if "activity_type" in info:
                event_dict.setdefault("activity_type", info["activity_type"])
            if "workflow_type" in info:
                event_dict.setdefault("workflow_type", info["workflow_type"])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    foreign = [*shared, structlog.stdlib.ExtraAdder(), _flatten_temporal]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A named structlog logger; use this instead of logging.getLogger in project code."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
