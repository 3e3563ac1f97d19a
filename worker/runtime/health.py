"""HTTP liveness and readiness endpoints for the worker pod.

Liveness says the process and its event loop are alive. Readiness says the worker can do useful
work right now: Temporal answers a health check and Convex answers ``/version``. A probe that
only echoes "ok" would route jobs to a pod that cannot record them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping

from worker.logging import get_logger

Check = Callable[[], Awaitable[object]]
"""A readiness check: succeeds when it returns, fails when it raises."""
log = get_logger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """A minimal asyncio HTTP/1.1 server: GET /livez and GET /readyz, JSON bodies."""

    def __init__(
        self, checks: Mapping[str, Check], *, host: str, port: int, timeout: float = 3.0
    ) -> None:
        self._checks = dict(checks)
        self._host = host
        self._port = port
        self._timeout = timeout
        self._server: asyncio.Server | None = None
        self.shutting_down = False

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        assert self._server is not None, "server not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Run every check concurrently, each bounded by the timeout."""
        if self.shutting_down:
            return False, {"worker": "shutting down"}

        async def one(check: Check) -> str:
            try:
                await asyncio.wait_for(check(), self._timeout)
                return "ok"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"[:300]

        names = list(self._checks)
        results = await asyncio.gather(*(one(self._checks[n]) for n in names))
        status = dict(zip(names, results, strict=True))
        return all(r == "ok" for r in results), status

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), self._timeout)
            while (await asyncio.wait_for(reader.readline(), self._timeout)) not in (b"\r\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            body: dict[str, object]
            if method != "GET":
                code, body = 405, {"error": "use GET"}
            elif path == "/livez":
                code, body = 200, {"status": "alive"}
            elif path == "/readyz":
                ready, checks = await self.readiness()
                code, body = (200 if ready else 503), {"ready": ready, "checks": checks}
            else:
                code, body = 404, {"error": "try /livez or /readyz"}
            payload = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
