"""``notify``: tell a repository's webhook that a run ended, signed with HMAC-SHA256.

The repository registry entry names the URL (``jangar repos add URL --webhook HOOK``); the key
is the worker's ``JANGAR_WEBHOOK_SECRET``, never stored in Convex. The request is a JSON
``POST`` with:

- ``X-Jangar-Event: run.finished`` and ``X-Jangar-Delivery``: a stable id (the run's workflow
  and run ids), the same on every retry, so a receiver can drop duplicates;
- ``X-Jangar-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the secret
  (the scheme GitHub uses for its own webhooks), omitted when no secret is configured.

A 2xx answer delivers it; a 5xx, 429, a timeout or a connection error is retried by Temporal
(the activity's retry policy, bounded); any other 4xx is the receiver refusing it, which is
final (non-retryable). Either way the workflow records the outcome as an event.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from pydantic import Field
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.models import JobModel

WEBHOOK_UNAVAILABLE = "WebhookUnavailable"  # retryable
WEBHOOK_REFUSED = "WebhookRefused"  # non-retryable


class WebhookInput(JobModel):
    """One run-finished notification."""

    url: str = Field(pattern=r"^https?://")
    delivery_id: str = Field(min_length=1, max_length=512)
    payload: dict[str, object]


class WebhookResult(JobModel):
    delivered: bool
    status: int


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def notify(
    inp: WebhookInput, config: JobConfig, transport: httpx.AsyncBaseTransport | None = None
) -> WebhookResult:
    """Deliver the notification; see the module docstring."""
    body = json.dumps(inp.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "jangar-worker",
        "X-Jangar-Event": "run.finished",
        "X-Jangar-Delivery": inp.delivery_id,
    }
    if config.webhook_secret is not None:
        headers["X-Jangar-Signature"] = signature(config.webhook_secret.get_secret_value(), body)
    try:
        async with httpx.AsyncClient(timeout=15.0, transport=transport) as client:
            response = await client.post(inp.url, content=body, headers=headers)
    except httpx.TransportError as exc:
        raise ApplicationError(
            f"webhook unreachable ({type(exc).__name__}); will retry", type=WEBHOOK_UNAVAILABLE
        ) from None
    if 200 <= response.status_code < 300:
        return WebhookResult(delivered=True, status=response.status_code)
    if response.status_code >= 500 or response.status_code == 429:
        raise ApplicationError(
            f"webhook answered {response.status_code}; will retry", type=WEBHOOK_UNAVAILABLE
        )
    raise ApplicationError(
        f"webhook refused the notification ({response.status_code})",
        type=WEBHOOK_REFUSED,
        non_retryable=True,
    )
