"""A TCP proxy in front of the local Convex backend: it counts the requests that pass and fails
the way a network does. Used by the integration tests (faults) and the benchmark (counts).

It counts HTTP requests (function calls and file uploads and downloads) by their request lines
in the client's byte stream, so a keep-alive connection's requests each count.

Three faults, switched on by a test while a job runs:
- ``down``: every new connection is closed at once (Convex unreachable);
- ``lose_responses(n)``: the next ``n`` responses are dropped after the backend produced them,
  and the connection is cut: the write landed, the caller never hears so and retries;
- ``lose_one_in = n``: from then on, every ``n``-th answer (counted by the chunks the backend
  sends back) is dropped the same way: a lossy network, for as long as it is set.
The worker's Convex client sees both as retryable errors; Convex's idempotency must absorb them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

_REQUEST_LINE = re.compile(rb"(?:POST|GET|HEAD|PUT) /(?:api|version)")


class FlakyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self.down = False
        self._to_lose = 0
        self.lost = 0
        self.refused = 0
        self.requests = 0
        self.lose_one_in = 0
        self._answers = 0
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def retarget(self, target_host: str, target_port: int) -> None:
        """Send new connections to another backend (one restarted on another port)."""
        self._target = (target_host, target_port)

    def lose_responses(self, n: int) -> None:
        self._to_lose += n

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._relay(client_r, client_w)
        except asyncio.CancelledError:
            client_w.close()  # the proxy is stopping: drop the connection quietly
        finally:
            self._connections.discard(task)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            client_w.close()
            return
        try:
            backend_r, backend_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            return

        async def upstream() -> None:
            tail = b""  # a request line cut between two reads still counts once
            while data := await client_r.read(65536):
                seen = tail + data
                self.requests += len(_REQUEST_LINE.findall(seen)) - len(_REQUEST_LINE.findall(tail))
                tail = seen[-16:]
                backend_w.write(data)
                await backend_w.drain()
            backend_w.close()

        async def downstream() -> None:
            while data := await backend_r.read(65536):
                self._answers += 1
                lossy = self.lose_one_in > 0 and self._answers % self.lose_one_in == 0
                if lossy or self._to_lose > 0:
                    if not lossy:
                        self._to_lose -= 1
                    self.lost += 1
                    return  # the backend answered; the caller never hears it
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in tasks:
                pump.cancel()
        for writer in (client_w, backend_w):
            with contextlib.suppress(Exception):
                writer.close()
