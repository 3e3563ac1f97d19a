"""The local Convex backend's HTTP surface, checked on the wire (raw httpx, not our client).

Shapes follow Convex's open-source backend (crates/local_backend/src/public_api.rs): a call that
ran answers HTTP 200 with ``status`` success/error, a request it cannot take answers 4xx with
``{code, message}``, and every float is written as a float (``1.0``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.local.local_convex import DEV_ADMIN_KEY, RunningBackend, start_local_backend

FIXTURE = Path(__file__).resolve().parent / "local_backend_fixture" / "convex"
JSON = {"Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def fixture_backend() -> Iterator[RunningBackend]:
    """The server on the fixture functions, a chosen port, and no CONVEX_ADMIN_KEY."""
    backend = start_local_backend(admin_key=None, port=_free_port(), functions_dir=FIXTURE)
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
async def http(convex_backend: RunningBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=convex_backend.url, timeout=10) as client:
        yield client


@pytest.fixture
async def fx(fixture_backend: RunningBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fixture_backend.url, timeout=10) as client:
        yield client


def admin(key: str | None) -> dict[str, str]:
    assert key is not None
    return {**JSON, "Authorization": f"Convex {key}"}


async def call(
    client: httpx.AsyncClient, route: str, body: dict[str, Any], headers: dict[str, str] = JSON
) -> httpx.Response:
    return await client.post(route, content=json.dumps(body), headers=headers)


# --- Start, port, version, shutdown ----------------------------------------------------------


async def test_version_answers(http: httpx.AsyncClient) -> None:
    response = await http.get("/version")
    assert response.status_code == 200
    assert response.text.startswith("local-backend (convex 1.")


def test_port_zero_picks_a_free_port(convex_backend: RunningBackend) -> None:
    assert convex_backend.port > 0
    assert convex_backend.url == f"http://127.0.0.1:{convex_backend.port}"


def test_a_chosen_port_is_used(fixture_backend: RunningBackend) -> None:
    assert fixture_backend.url.endswith(f":{fixture_backend.port}")


def test_it_binds_loopback_only(convex_backend: RunningBackend) -> None:
    """The listening socket's local address is 127.0.0.1 (Linux: read from /proc/net/tcp*)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        pytest.skip("needs /proc/net/tcp")
    listening = []
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].rsplit(":", 1)
            if int(port, 16) == convex_backend.port and fields[3] == "0A":  # 0A = LISTEN
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex; nothing on 0.0.0.0 or ::


def test_sigterm_stops_it_cleanly() -> None:
    backend = start_local_backend(admin_key="k", functions_dir=FIXTURE)
    started = time.monotonic()
    os.kill(backend.pid, signal.SIGTERM)
    assert backend.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    backend.stop()


def test_a_bad_port_stops_the_start() -> None:
    with pytest.raises(Exception, match="PORT must be an integer"):
        start_local_backend(admin_key="k", port=-1, functions_dir=FIXTURE, timeout=30)


# --- Keys and visibility -----------------------------------------------------------------------


async def test_internal_function_refused_without_key(http: httpx.AsyncClient) -> None:
    response = await call(http, "/api/query", {"path": "workOrders:listQueued", "args": {}})
    assert response.status_code == 200
    assert response.json() == {
        "status": "error",
        "errorMessage": "Could not find public function for 'workOrders:listQueued'. "
        "Did you forget to run `npx convex dev` or `npx convex deploy`?",
    }


async def test_internal_function_refused_with_a_wrong_key(http: httpx.AsyncClient) -> None:
    response = await call(
        http, "/api/query", {"path": "workOrders:listQueued", "args": {}}, admin("wrong")
    )
    assert response.status_code == 401
    assert response.json() == {
        "code": "BadAdminKey",
        "message": "The provided admin key was invalid for this instance",
    }


async def test_internal_function_answers_with_the_key(
    http: httpx.AsyncClient, convex_backend: RunningBackend
) -> None:
    body = {"path": "workOrders:listQueued", "args": {"limit": 1}, "format": "json"}
    response = await call(http, "/api/query", body, admin(convex_backend.admin_key))
    assert response.status_code == 200
    assert response.json()["status"] == "success"


async def test_the_development_key_is_used_when_none_is_set(fx: httpx.AsyncClient) -> None:
    body = {"path": "fixture:secret", "args": {}}
    anonymous = (await call(fx, "/api/query", body)).json()
    assert anonymous["status"] == "error"
    answered = (await call(fx, "/api/query", body, admin(DEV_ADMIN_KEY))).json()
    assert answered == {"status": "success", "value": "internal answer"}


async def test_a_malformed_authorization_header_is_400(http: httpx.AsyncClient) -> None:
    body = {"path": "runs:list", "args": {}}
    response = await call(http, "/api/query", body, {**JSON, "Authorization": "Basic abcdef"})
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidAdminKey"


# --- Function kinds and paths ------------------------------------------------------------------


async def test_kind_mismatch_is_refused(
    http: httpx.AsyncClient, convex_backend: RunningBackend
) -> None:
    response = await call(
        http, "/api/query", {"path": "runs:start", "args": {}}, admin(convex_backend.admin_key)
    )
    assert response.status_code == 200
    assert response.json() == {
        "status": "error",
        "errorMessage": "Trying to execute runs:start as Query, but it is defined as Mutation.",
    }
    response = await call(http, "/api/mutation", {"path": "runs:list", "args": {}})
    assert "as Mutation, but it is defined as Query" in response.json()["errorMessage"]


async def test_unknown_function_answers_like_convex(http: httpx.AsyncClient) -> None:
    response = await call(http, "/api/mutation", {"path": "nope.js:nothing", "args": {}})
    assert response.status_code == 200
    assert response.json()["errorMessage"].startswith(
        "Could not find public function for 'nope:nothing'."
    )


async def test_run_endpoint_takes_the_path_from_the_url(fx: httpx.AsyncClient) -> None:
    response = await call(fx, "/api/run/fixture/echo", {"args": {"value": 3}})
    assert response.json() == {"status": "success", "value": 3.0}
    assert response.text == '{"status":"success","value":3.0}'
    action = await call(fx, "/api/run/fixture/ping", {"args": {}})
    assert action.json() == {"status": "success", "value": "pong"}
    missing = await call(fx, "/api/run/fixture", {"args": {}})
    assert missing.status_code == 400 and missing.json()["code"] == "MissingIdentifier"


async def test_actions_and_default_exports(fx: httpx.AsyncClient) -> None:
    ping = await call(fx, "/api/action", {"path": "fixture:ping", "args": {}})
    assert ping.json() == {"status": "success", "value": "pong"}
    for path in ("fixture", "fixture:default", "fixture.js:default"):
        response = await call(fx, "/api/query", {"path": path, "args": {}})
        assert response.json() == {"status": "success", "value": "default export"}, path


async def test_files_convex_skips_are_not_loaded(fx: httpx.AsyncClient) -> None:
    # never.loaded.ts throws on import: the server started, so it was skipped, as Convex does.
    response = await call(fx, "/api/query", {"path": "never.loaded:anything", "args": {}})
    assert response.status_code == 200
    assert response.json()["status"] == "error"


# --- Values on the wire ------------------------------------------------------------------------


async def test_whole_numbers_are_written_as_floats(fx: httpx.AsyncClient) -> None:
    value = {"n": 1, "neg": -2, "big": 1e21, "frac": 1.5, "list": [0, 3], "t": True}
    response = await call(fx, "/api/query", {"path": "fixture:echo", "args": {"value": value}})
    assert response.text == (
        '{"status":"success","value":{"big":1e+21,"frac":1.5,"list":[0.0,3.0],'
        '"n":1.0,"neg":-2.0,"t":true}}'
    )


async def test_encoded_and_clean_formats(fx: httpx.AsyncClient) -> None:
    int64 = {"$integer": "KgAAAAAAAAA="}  # 42 as int64
    args = {"value": {"i": int64, "b": {"$bytes": "AQI="}, "nan": {"$float": "AAAAAAAA+H8="}}}
    encoded = await call(
        fx, "/api/query", {"path": "fixture:echo", "args": args, "format": "convex_encoded_json"}
    )
    assert encoded.json()["value"] == args["value"]
    clean = await call(fx, "/api/query", {"path": "fixture:echo", "args": args, "format": "json"})
    assert clean.json()["value"] == {"i": "42", "b": "AQI=", "nan": "NaN"}
    default = await call(fx, "/api/query", {"path": "fixture:echo", "args": args})
    assert default.json() == clean.json()
    bad = await call(fx, "/api/query", {"path": "fixture:echo", "args": args, "format": "xml"})
    assert bad.status_code == 400
    assert bad.json() == {
        "code": "BadFormat",
        "message": "format param must be one of [`json`]. Got xml",
    }


async def test_legacy_positional_args_are_accepted(fx: httpx.AsyncClient) -> None:
    response = await call(fx, "/api/query", {"path": "fixture:echo", "args": [{"value": "a"}]})
    assert response.json() == {"status": "success", "value": "a"}


# --- Errors ------------------------------------------------------------------------------------


async def test_convex_error_carries_error_data(fx: httpx.AsyncClient) -> None:
    body = {"path": "fixture:refuse", "args": {}, "format": "convex_encoded_json"}
    response = await call(fx, "/api/mutation", body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "error"
    assert answer["errorData"] == {"code": "NOPE", "message": "refused on purpose"}
    assert answer["errorMessage"].startswith("Uncaught ConvexError: ")


async def test_a_plain_throw_has_no_error_data(fx: httpx.AsyncClient) -> None:
    answer = (await call(fx, "/api/mutation", {"path": "fixture:crash", "args": {}})).json()
    assert answer["status"] == "error"
    assert "errorData" not in answer
    assert answer["errorMessage"].startswith("Uncaught Error: boom")
    assert "fixture.ts" in answer["errorMessage"]  # the frame inside convex/


async def test_console_output_comes_back_as_log_lines(fx: httpx.AsyncClient) -> None:
    answer = (await call(fx, "/api/mutation", {"path": "fixture:chatty", "args": {}})).json()
    assert answer == {
        "status": "success",
        "value": None,
        "logLines": ["[LOG] 'hello' 42", "[WARN] 'careful'"],
    }
    quiet = (await call(fx, "/api/query", {"path": "fixture:echo", "args": {"value": 1}})).json()
    assert "logLines" not in quiet  # Convex omits empty log lines


@pytest.mark.parametrize(
    ("body", "headers", "code", "message"),
    [
        (b'{"path":"runs:list","args":{}}', {}, "BadJsonBody", "Expected request with `Content"),
        (b'{"path":', JSON, "BadJsonBody", "Failed to parse the request body as JSON"),
        (b'{"args":{}}', JSON, "BadJsonBody", "missing field `path`"),
        (b'{"path":"runs:list"}', JSON, "BadJsonBody", "missing field `args`"),
        (b"[1]", JSON, "BadJsonBody", "invalid type"),
        (b'{"path":"a:b:c","args":{}}', JSON, "BadConvexFunctionIdentifier", "a:b:c is not"),
    ],
)
async def test_malformed_requests_are_400(
    http: httpx.AsyncClient, body: bytes, headers: dict[str, str], code: str, message: str
) -> None:
    response = await http.post("/api/query", content=body, headers=headers)
    assert response.status_code == 400
    answer = response.json()
    assert set(answer) == {"code", "message"}
    assert answer["code"] == code and message in answer["message"]


async def test_unknown_routes_and_methods(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/nothing")).status_code == 404
    assert (await http.get("/api/query")).status_code == 405


async def test_a_body_over_the_limit_is_413(fx: httpx.AsyncClient) -> None:
    huge = b'{"path":"fixture:echo","args":{"value":"' + b"x" * (21 * 1024 * 1024) + b'"}}'
    response = await fx.post("/api/query", content=huge, headers=JSON)
    assert response.status_code == 413
    assert response.json()["code"] == "PayloadTooLarge"


async def test_arguments_over_16_mib_are_refused(fx: httpx.AsyncClient) -> None:
    args = {"value": "x" * (16 * 1024 * 1024 + 10)}
    answer = (await call(fx, "/api/query", {"path": "fixture:echo", "args": args})).json()
    assert answer["status"] == "error"
    assert answer["errorMessage"].startswith("Arguments for fixture:echo are too large")
    assert "limit: 16 MiB" in answer["errorMessage"]


async def test_documents_over_1_mib_are_refused_and_not_written(fx: httpx.AsyncClient) -> None:
    async def count() -> float:
        answer = (await call(fx, "/api/query", {"path": "fixture:countBlobs", "args": {}})).json()
        value: float = answer["value"]
        return value

    before = await count()
    ok = await call(fx, "/api/mutation", {"path": "fixture:insertBlob", "args": {"size": 1000}})
    assert ok.json()["status"] == "success"
    for path in ("fixture:insertBlob", "fixture:growBlob"):
        body = {"path": path, "args": {"size": 1024 * 1024 + 1}}
        answer = (await call(fx, "/api/mutation", body)).json()
        assert answer["status"] == "error", path
        assert "Value is too large (1 MiB > maximum size 1 MiB)" in answer["errorMessage"]
    assert await count() == before + 1


async def test_calls_run_one_at_a_time(
    http: httpx.AsyncClient, convex_backend: RunningBackend
) -> None:
    """Concurrent requests all answer correctly: the server queues them for convex-test."""

    async def create(i: int) -> str:
        body = {"path": "repositories:add", "args": {"url": f"https://git.example.test/c/r{i}"}}
        answer = (await call(http, "/api/mutation", body, admin(convex_backend.admin_key))).json()
        assert answer["status"] == "success", answer
        value: str = answer["value"]["repositoryId"]
        return value

    ids = await asyncio.gather(*(create(i) for i in range(20)))
    assert len(set(ids)) == 20
