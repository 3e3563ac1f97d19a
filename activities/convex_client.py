"""The one Convex client: async HTTP calls to Convex's public function API, every answer classified.

Why not the ``convex`` package's own clients: its ``ConvexClient`` is a blocking WebSocket client
with no timeout, and its ``ConvexHttpClient`` uses ``requests`` with no timeout, opens a new
connection per call and loses ``ConvexError`` data. This module keeps what that package does
well, the value codec (``convex.values``), and adds what a worker needs:

* one pooled ``httpx.AsyncClient`` per process, with connect and read timeouts;
* the deploy/admin key sent as ``Authorization: Convex <key>`` (so internal functions can be
  called), or a user's token as ``Authorization: Bearer <token>`` (public functions run as that
  user, as the chat UI calls them); neither is logged, shown in ``repr`` or put in an error
  message;
* every answer classified, so callers decide retries by type, not by parsing text:

  - ``ConvexUnavailableError`` (retryable): connection refused or reset, timeouts, HTTP 5xx,
    408 and 429. Convex answers OCC conflicts and overload with 503. Every function the worker
    calls is idempotent, so retrying a mutation whose answer was lost is safe.
  - ``ConvexFunctionError`` (not retryable): the function threw a ``ConvexError``; its data is
    ``{code, message}`` in this project, exposed as ``.code``, ``.message`` and ``.data``.
  - ``ConvexRequestError`` (not retryable): HTTP 4xx (malformed request, bad key), an unknown
    function (or an internal one called without the key: Convex answers both as "Could not
    find public function"), or a function that failed without a ``ConvexError`` (a bug).

Wire format (Convex's ``crates/local_backend/src/public_api.rs``): ``POST /api/{query,mutation,
action}`` with ``{"path", "args", "format"}``; a call that ran answers HTTP 200 with
``{"status": "success", "value"}`` or ``{"status": "error", "errorMessage", "errorData"?}``.
We ask for ``convex_encoded_json``, the lossless encoding that ``json_to_convex`` decodes
(int64 as ``{"$integer"}``, bytes as ``{"$bytes"}``); every float comes back written as a float
(``1.0``), which ``json_to_convex`` requires.

Numbers: Convex's ``v.number()`` is a float64 and rejects an int64. ``convex_to_json`` sends a
Python ``int`` as a float (``1`` becomes ``1.0``; outside +-2**53 it refuses, as precision would
be lost), so timestamps in milliseconds and counts can be passed as plain ints. Use
``convex.values.ConvexInt64`` for a ``v.int64()`` argument.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from convex.values import convex_to_json, json_to_convex

FunctionKind = Literal["query", "mutation", "action"]

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection; a Convex that cannot accept one in 5 s is unavailable."""

MAX_CONNECTIONS = 32
"""Pooled connections per process: above the worker's usual concurrent activities."""

MAX_KEEPALIVE_CONNECTIONS = 16
KEEPALIVE_EXPIRY = 30.0

_USER_AGENT = "jangar-worker convex-client"
_SNIPPET = 300


class ConvexClientError(Exception):
    """Any failure of a Convex call. ``retryable`` says whether trying again can help."""

    retryable: bool = False

    def __init__(self, message: str, *, path: str | None = None, status: int | None = None):
        super().__init__(message)
        self.path = path
        self.status = status


class ConvexUnavailableError(ConvexClientError):
    """Convex did not answer usefully: connection failure, timeout, 5xx, 408 or 429. Retry."""

    retryable = True


class ConvexRequestError(ConvexClientError):
    """The request cannot succeed as sent: 4xx, unknown function, or a function that crashed."""

    retryable = False


class ConvexFunctionError(ConvexClientError):
    """The function threw a ``ConvexError``: a deliberate refusal carrying ``{code, message}``."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        path: str,
        code: str | None,
        error_message: str,
        data: Any,
        server_message: str,
    ) -> None:
        super().__init__(message, path=path, status=200)
        self.code = code
        self.message = error_message
        self.data = data
        self.server_message = server_message


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _describe_http_error(response: httpx.Response) -> str:
    """``401 BadAdminKey: The provided admin key ...`` from a ``{code, message}`` body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        return f"HTTP {response.status_code} {body.get('code')}: {body.get('message', '')}"
    return f"HTTP {response.status_code}: {_snippet(response.text) or response.reason_phrase}"


class ConvexClient:
    """Async client for one Convex deployment (cloud, self-hosted, or the local backend).

    Create one per process and share it: it holds a connection pool. Use it as an async
    context manager, or call ``aclose()``.
    """

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
    ) -> None:
        """``key``: the deploy or admin key (internal functions allowed, no user identity).
        ``token``: a user's JWT from the deployment's identity provider (public functions run as
        that user). At most one of the two; with neither, calls are anonymous."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Convex URL must start with http:// or https://, got {url!r}")
        if key and token:
            raise ValueError(
                "pass either the admin/deploy key or a user token, not both: Convex runs an admin "
                "call without a user, and a user's call without admin rights"
            )
        self._url = url.rstrip("/")
        self._has_key = bool(key)
        self._has_token = bool(token)
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        for what, secret, scheme in (("key", key, "Convex"), ("token", token, "Bearer")):
            if not secret:
                continue
            if not secret.isprintable() or secret != secret.strip() or not secret.isascii():
                # Checked here because the HTTP layer's own error would quote the header value.
                raise ValueError(f"the Convex {what} has characters not allowed in an HTTP header")
            headers["Authorization"] = f"{scheme} {secret}"
        if connect_timeout is None:
            connect_timeout = min(timeout, DEFAULT_CONNECT_TIMEOUT)
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self._url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            ),
            follow_redirects=False,
        )

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        key = "<set>" if self._has_key else None
        token = "<set>" if self._has_token else None
        return f"ConvexClient(url={self._url!r}, key={key}, token={token})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def query(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run a query (``module:function``) and return its decoded value."""
        return await self._call("query", path, args)

    async def mutation(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run a mutation. The HTTP API gives no exactly-once: the functions are idempotent."""
        return await self._call("mutation", path, args)

    async def action(self, path: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run an action."""
        return await self._call("action", path, args)

    async def upload(self, upload_url: str, data: bytes, *, content_type: str) -> str:
        """POST ``data`` to an upload URL from ``files:generateUploadUrl``; the storage id.

        Convex answers ``{"storageId"}``. Failures are classified like calls: a lost answer is
        ``ConvexUnavailableError`` and the caller uploads again (artifacts:add deletes the
        extra file a retried upload leaves).
        """
        what = "Convex storage upload"
        response = await self._send(
            what,
            None,
            lambda: self._http.post(
                upload_url, content=data, headers={"Content-Type": content_type}
            ),
        )
        _raise_for_status(what, response)
        try:
            storage_id = response.json()["storageId"]
        except (ValueError, KeyError, TypeError):
            raise ConvexRequestError(
                f"{what}: unexpected answer: {_snippet(response.text)}", status=200
            ) from None
        return str(storage_id)

    async def download(self, url: str) -> bytes:
        """GET a stored file's bytes from the URL Convex serves it at.

        A storage URL is a capability: it needs no key. The key (or token) goes only to this
        client's own origin, so a URL naming another host (a step's ``logUrl`` is any URL an
        admin wrote) never receives it.
        """
        what = "Convex storage download"
        request = self._http.build_request("GET", url)
        if _origin(str(request.url)) != _origin(self._url):
            request.headers.pop("Authorization", None)
        response = await self._send(what, None, lambda: self._http.send(request))
        _raise_for_status(what, response)
        return response.content

    async def version(self) -> str:
        """``GET /version``: the readiness probe. Raises like a call when Convex is not there."""
        what = f"GET {self._url}/version"
        response = await self._send(what, None, lambda: self._http.get("/version"))
        _raise_for_status(what, response)
        return response.text.strip()

    async def _call(self, kind: FunctionKind, path: str, args: Mapping[str, Any] | None) -> Any:
        what = f"Convex {kind} {path}"
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise TypeError(f"{what}: arguments must be a mapping, got {type(args).__name__}")
        try:
            encoded = convex_to_json(dict(args))
            body = json.dumps(
                {"path": path, "args": encoded, "format": "convex_encoded_json"},
                allow_nan=False,
                separators=(",", ":"),
            ).encode()
        except (TypeError, ValueError) as exc:
            raise ConvexRequestError(
                f"{what}: arguments are not Convex values: {exc}", path=path
            ) from exc
        response = await self._send(
            what,
            path,
            lambda: self._http.post(
                f"/api/{kind}", content=body, headers={"Content-Type": "application/json"}
            ),
        )
        return _decode(what, path, response)

    async def _send(
        self, what: str, path: str | None, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        """Send one request, turning transport failures into classified errors."""
        try:
            response = await send()
        except httpx.TimeoutException as exc:
            raise ConvexUnavailableError(
                f"{what}: {self._url} did not answer in time ({type(exc).__name__}, "
                f"timeout {self._timeout:g} s)",
                path=path,
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise ConvexUnavailableError(
                f"{what}: cannot reach {self._url} ({type(exc).__name__}: {exc})", path=path
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            # Not the exception's text: a protocol error may quote a header, i.e. the key.
            raise ConvexRequestError(
                f"{what}: request to {self._url} could not be sent ({type(exc).__name__})",
                path=path,
            ) from None
        return response


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in) of a URL."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), port


def _is_unavailable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _raise_for_status(what: str, response: httpx.Response, path: str | None = None) -> None:
    """Anything but 200 raises: unavailable (retryable) for 5xx, 408 and 429, else a request
    error (a bug or a refusal, not an outage)."""
    status = response.status_code
    if status == 200:
        return
    error = f"{what}: {_describe_http_error(response)}"
    if _is_unavailable_status(status):
        raise ConvexUnavailableError(error, path=path, status=status)
    raise ConvexRequestError(error, path=path, status=status)


def _decode(what: str, path: str, response: httpx.Response) -> Any:
    """Classify one answer of the function API and return the decoded value."""
    _raise_for_status(what, response, path)
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        raise ConvexRequestError(
            f"{what}: answer is not JSON (is {response.url} a Convex deployment?): "
            f"{_snippet(response.text)}",
            path=path,
            status=status,
        ) from None
    outcome = body.get("status") if isinstance(body, dict) else None
    if outcome == "success":
        try:
            return json_to_convex(body.get("value"))
        except (ValueError, TypeError) as exc:
            raise ConvexRequestError(
                f"{what}: cannot decode the returned value: {exc}", path=path, status=status
            ) from exc
    if outcome == "error":
        server_message = str(body.get("errorMessage", ""))
        if "errorData" in body:
            try:
                data = json_to_convex(body["errorData"])
            except (ValueError, TypeError):
                data = body["errorData"]
            code = data.get("code") if isinstance(data, dict) else None
            message = data.get("message") if isinstance(data, dict) else None
            if not isinstance(message, str):
                message = data if isinstance(data, str) else server_message
            shown = f"{code}: {message}" if isinstance(code, str) else message
            raise ConvexFunctionError(
                f"{what} refused: {shown}",
                path=path,
                code=code if isinstance(code, str) else None,
                error_message=message,
                data=data,
                server_message=server_message,
            )
        raise ConvexRequestError(
            f"{what} failed: {_snippet(server_message) or 'no error message'}",
            path=path,
            status=status,
        )
    raise ConvexRequestError(
        f"{what}: unexpected answer: {_snippet(response.text)}", path=path, status=status
    )
