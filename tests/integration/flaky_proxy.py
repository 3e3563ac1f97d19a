"""A TCP proxy in front of the local Convex backend that fails the way a network does.

Two faults, switched on by the test while a job runs:
- ``down``: every new connection is closed at once (Convex unreachable);
- ``lose_responses(n)``: the next ``n`` responses are dropped after the backend produced them,
  and the connection is cut: the write landed, the caller never hears so and retries.
The worker's Convex client sees both as retryable errors; Convex's idempotency must absorb them.
"""

from __future__ import annotations

import asyncio
import contextlib


class FlakyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self.down = False
        self._to_lose = 0
        self.lost = 0
        self.refused = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def lose_responses(self, n: int) -> None:
        self._to_lose += n

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
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
            while data := await client_r.read(65536):
                backend_w.write(data)
                await backend_w.drain()
            backend_w.close()

        async def downstream() -> None:
            while data := await backend_r.read(65536):
                if self._to_lose > 0:
                    self._to_lose -= 1
                    self.lost += 1
                    return  # the backend answered; the caller never hears it
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, backend_w):
            with contextlib.suppress(Exception):
                writer.close()
