"""The Python Convex client against the local backend over real HTTP, and its error classes.

The backend is shared by the session, so every test makes its own session, work order and run
(unique user ids and repos) and never depends on another test's rows.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from activities.convex_client import (
    ConvexClient,
    ConvexClientError,
    ConvexFunctionError,
    ConvexRequestError,
    ConvexUnavailableError,
)
from worker.cli.submit import submit_as_operator
from worker.local.local_convex import RunningBackend

T0 = 1_700_000_000_000  # ms timestamps, passed as Python ints on purpose
TWO_MIB = 2 * 1024 * 1024


@dataclass
class Seeded:
    session_id: str
    message_id: str
    work_order_id: str
    repo: str


async def seed_work_order(client: ConvexClient) -> Seeded:
    tag = uuid.uuid4().hex[:12]
    repo = f"https://git.example.test/jangar-tests/repo-{tag}.git"
    ids = await submit_as_operator(
        client, repo=repo, prompt="fix the test", title="Fix the flaky test", user=f"user-{tag}"
    )
    return Seeded(ids.session_id, ids.message_id, ids.work_order_id, repo)


def start_args(seeded: Seeded, run_suffix: str = "1") -> dict[str, Any]:
    return {
        "workflowRequestId": seeded.work_order_id,
        "temporalWorkflowId": f"work-order-{seeded.work_order_id}",
        "temporalRunId": f"run-{run_suffix}",
        "taskQueue": "jangar",
        "workerId": "worker-test",
        "repo": seeded.repo,
        "branch": "codex/fix",
        "startedAt": T0,
    }


async def seed_run(client: ConvexClient) -> tuple[Seeded, str]:
    seeded = await seed_work_order(client)
    run_id = await client.mutation("runs:start", start_args(seeded))
    return seeded, run_id


async def timeline(client: ConvexClient, run_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await client.query("runs:getTimelineAsOperator", {"runId": run_id})
    return result


# --- The "Done when", over real HTTP -------------------------------------------------


async def test_run_start_twice_gives_one_id(convex_client: ConvexClient) -> None:
    seeded = await seed_work_order(convex_client)
    first = await convex_client.mutation("runs:start", start_args(seeded))
    second = await convex_client.mutation("runs:start", start_args(seeded))
    assert first == second
    latest = await convex_client.query(
        "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": seeded.work_order_id}
    )
    assert latest["_id"] == first
    assert latest["status"] == "running"


async def test_event_append_twice_with_one_key_gives_one_event(
    convex_client: ConvexClient,
) -> None:
    seeded, run_id = await seed_run(convex_client)
    event = {
        "runId": run_id,
        "workflowRequestId": seeded.work_order_id,
        "type": "system",
        "data": {"note": "agent started"},
        "idempotencyKey": f"{run_id}:agent-started",
    }
    first = await convex_client.mutation("events:append", event)
    second = await convex_client.mutation("events:append", event)
    assert first == second
    events = (await timeline(convex_client, run_id))["events"]
    assert [e["_id"] for e in events if e["idempotencyKey"] == event["idempotencyKey"]] == [first]


async def test_step_at_succeeded_stays_after_a_late_running(convex_client: ConvexClient) -> None:
    _, run_id = await seed_run(convex_client)
    step = {"runId": run_id, "name": "agent", "kind": "activity"}
    done = await convex_client.mutation(
        "steps:appendOrUpdate",
        {**step, "status": "succeeded", "startedAt": T0, "endedAt": T0 + 5_000},
    )
    assert done["status"] == "succeeded"
    late = await convex_client.mutation(
        "steps:appendOrUpdate", {**step, "status": "running", "startedAt": T0 + 1}
    )
    assert late == {"stepId": done["stepId"], "status": "succeeded", "changed": False}
    steps = (await timeline(convex_client, run_id))["steps"]
    assert [(s["name"], s["status"], s["startedAt"]) for s in steps] == [
        ("agent", "succeeded", float(T0))
    ]


async def test_run_status_succeeded_to_running_is_refused_with_a_typed_error(
    convex_client: ConvexClient,
) -> None:
    _, run_id = await seed_run(convex_client)
    await convex_client.mutation(
        "runs:updateStatus", {"runId": run_id, "status": "succeeded", "endedAt": T0 + 60_000}
    )
    with pytest.raises(ConvexFunctionError) as caught:
        await convex_client.mutation("runs:updateStatus", {"runId": run_id, "status": "running"})
    error = caught.value
    assert error.code == "INVALID_TRANSITION"
    assert error.retryable is False
    assert error.data == {"code": "INVALID_TRANSITION", "message": error.message}
    assert "runs:updateStatus" in str(error) and "INVALID_TRANSITION" in str(error)
    run = (await timeline(convex_client, run_id))["run"]
    assert run["status"] == "succeeded"


async def test_internal_function_without_the_key_is_refused(
    convex_client: ConvexClient, anon_client: ConvexClient
) -> None:
    seeded = await seed_work_order(convex_client)
    with pytest.raises(ConvexRequestError) as caught:
        await anon_client.mutation("runs:start", start_args(seeded))
    assert caught.value.retryable is False
    # Convex answers an internal function exactly like a missing one.
    assert "Could not find public function for 'runs:start'" in str(caught.value)
    assert (
        await convex_client.query(
            "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": seeded.work_order_id}
        )
        is None
    )


async def test_a_2_mib_payload_is_refused_and_nothing_is_written(
    convex_client: ConvexClient,
) -> None:
    seeded, run_id = await seed_run(convex_client)
    big = "x" * TWO_MIB
    with pytest.raises(ConvexFunctionError) as step_error:
        await convex_client.mutation(
            "steps:appendOrUpdate",
            {
                "runId": run_id,
                "name": "huge",
                "kind": "activity",
                "status": "running",
                "payload": {"blob": big},
            },
        )
    assert step_error.value.code == "TOO_LARGE"
    with pytest.raises(ConvexFunctionError) as event_error:
        await convex_client.mutation(
            "events:append",
            {
                "runId": run_id,
                "workflowRequestId": seeded.work_order_id,
                "type": "comment",
                "data": big,
                "idempotencyKey": f"{run_id}:huge",
            },
        )
    assert event_error.value.code == "TOO_LARGE"
    after = await timeline(convex_client, run_id)
    assert after["steps"] == []
    assert all(e["idempotencyKey"] != f"{run_id}:huge" for e in after["events"])


# --- Error classes ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable_server_is_retryable() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    async with ConvexClient(url, "secret-key-value", timeout=2.0) as client:
        with pytest.raises(ConvexUnavailableError) as caught:
            await client.query("runs:list", {})
        with pytest.raises(ConvexUnavailableError):
            await client.version()
    error = caught.value
    assert error.retryable is True
    assert isinstance(error, ConvexClientError)
    assert "runs:list" in str(error) and url in str(error)
    assert "secret-key-value" not in str(error) and "secret-key-value" not in repr(client)


@dataclass
class StubHttpServer:
    """A stand-in HTTP server (not Convex) answering every request with one fixed response."""

    status: int
    body: bytes
    content_type: str = "application/json"
    hang: bool = False
    requests: list[bytes] = field(default_factory=list)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.requests.append(head + (await reader.readexactly(length) if length else b""))
        if self.hang:
            await asyncio.sleep(30)
        writer.write(
            f"HTTP/1.1 {self.status} X\r\nContent-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n".encode()
            + self.body
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def stub() -> AsyncIterator[tuple[StubHttpServer, str]]:
    server_state = StubHttpServer(200, b"")
    server = await asyncio.start_server(server_state._handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield server_state, f"http://127.0.0.1:{port}"
    finally:
        server.close()


@pytest.mark.parametrize("status", [500, 503, 429, 408])
async def test_server_errors_and_overload_are_retryable(
    stub: tuple[StubHttpServer, str], status: int
) -> None:
    state, url = stub
    state.status = status
    state.body = b'{"code":"Overloaded","message":"try again later"}'
    async with ConvexClient(url) as client:
        with pytest.raises(ConvexUnavailableError) as caught:
            await client.mutation("runs:start", {})
    assert caught.value.retryable is True
    assert caught.value.status == status
    assert f"HTTP {status} Overloaded: try again later" in str(caught.value)


async def test_a_server_that_never_answers_times_out_as_retryable(
    stub: tuple[StubHttpServer, str],
) -> None:
    state, url = stub
    state.hang = True
    async with ConvexClient(url, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(ConvexUnavailableError) as caught:
            await client.query("runs:list", {})
    assert time.monotonic() - started < 5
    assert "did not answer in time" in str(caught.value)


async def test_ints_are_sent_as_floats_and_bools_stay_bools(
    stub: tuple[StubHttpServer, str],
) -> None:
    state, url = stub
    state.body = b'{"status":"success","value":{"n":1.0}}'
    async with ConvexClient(url) as client:
        value = await client.mutation("x:y", {"n": 1, "ok": True, "xs": [2, 3.5], "ts": T0})
    assert value == {"n": 1.0}
    body = json.loads(state.requests[0].split(b"\r\n\r\n", 1)[1])
    assert body["format"] == "convex_encoded_json"
    raw = state.requests[0].split(b"\r\n\r\n", 1)[1].decode()
    assert '"n":1.0' in raw and '"ok":true' in raw and '"xs":[2.0,3.5]' in raw
    assert f'"ts":{float(T0)!r}' in raw


async def test_ints_as_floats_against_the_backend(convex_client: ConvexClient) -> None:
    # startedAt is v.number(): an int64 would be refused, the float is taken.
    _, run_id = await seed_run(convex_client)
    run = (await timeline(convex_client, run_id))["run"]
    assert run["startedAt"] == float(T0) and isinstance(run["startedAt"], float)


async def test_a_non_json_answer_is_a_request_error(stub: tuple[StubHttpServer, str]) -> None:
    state, url = stub
    state.body, state.content_type = b"<html>hello</html>", "text/html"
    async with ConvexClient(url) as client:
        with pytest.raises(ConvexRequestError) as caught:
            await client.query("runs:list", {})
    assert "not JSON" in str(caught.value)


async def test_convex_error_code_surfaces(convex_client: ConvexClient) -> None:
    _, run_id = await seed_run(convex_client)
    with pytest.raises(ConvexFunctionError) as caught:
        await convex_client.mutation(
            "steps:appendOrUpdate",
            {"runId": run_id, "name": " ", "kind": "activity", "status": "running"},
        )
    error = caught.value
    assert error.code == "INVALID_ARGUMENT"
    assert isinstance(error.message, str) and error.message
    assert error.data["code"] == "INVALID_ARGUMENT"
    assert "ConvexError" in error.server_message


async def test_unknown_function_is_a_request_error(convex_client: ConvexClient) -> None:
    with pytest.raises(ConvexRequestError) as caught:
        await convex_client.query("nope:nothing", {})
    assert caught.value.retryable is False
    assert "Convex query nope:nothing" in str(caught.value)
    assert "Could not find public function for 'nope:nothing'" in str(caught.value)


async def test_function_failing_without_convex_error_is_a_request_error(
    convex_client: ConvexClient,
) -> None:
    with pytest.raises(ConvexRequestError) as caught:
        await convex_client.mutation("runs:start", {"workflowRequestId": "not-an-id"})
    assert caught.value.retryable is False
    assert not isinstance(caught.value, ConvexFunctionError)
    assert "runs:start failed" in str(caught.value)


async def test_malformed_request_is_a_4xx_request_error(convex_client: ConvexClient) -> None:
    with pytest.raises(ConvexRequestError) as caught:
        await convex_client.query("runs:list:extra", {})
    assert caught.value.status == 400
    assert "BadConvexFunctionIdentifier" in str(caught.value)


async def test_wrong_key_is_refused_and_never_shown(convex_backend: RunningBackend) -> None:
    async with ConvexClient(convex_backend.url, "not-the-key-0123") as client:
        with pytest.raises(ConvexRequestError) as caught:
            await client.query("runs:list", {})
        assert "not-the-key-0123" not in repr(client)
    assert caught.value.status == 401
    assert "BadAdminKey" in str(caught.value)
    assert "not-the-key-0123" not in str(caught.value)


def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError) as caught:
        ConvexClient("http://127.0.0.1:9", "abc\ndef-secret")
    assert "secret" not in str(caught.value)


async def test_arguments_that_are_not_convex_values_are_refused_locally() -> None:
    async with ConvexClient("http://127.0.0.1:9") as client:
        with pytest.raises(ConvexRequestError) as caught:
            await client.mutation("x:y", {"when": object()})
    assert "x:y" in str(caught.value) and "not Convex values" in str(caught.value)


async def test_download_sends_the_key_to_its_own_deployment_only(
    convex_backend: RunningBackend, convex_client: ConvexClient
) -> None:
    """A stored file's URL needs no key; a URL on another host (a ``logUrl`` can be any URL)
    must not receive it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        elsewhere = f"http://127.0.0.1:{server.server_address[1]}/api/storage/x"
        assert await convex_client.download(elsewhere) == b"ok"
        assert seen == [None]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    # Its own deployment still gets the key (and stored files download as before).
    upload = await convex_client.mutation("files:generateUploadUrl", {})
    storage_id = await convex_client.upload(str(upload), b"stored", content_type="text/plain")
    url = await convex_client.query("files:getUrl", {"storageId": storage_id})
    assert str(url).startswith(convex_backend.url)
    assert await convex_client.download(str(url)) == b"stored"
