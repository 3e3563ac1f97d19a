"""STAND-IN for a repository's webhook receiver (an operator's chat bot, a CI hook), served
locally by tests.

Not a real receiver: it records every request it gets (method, path, headers, the exact body
bytes, so a test can check the HMAC signature over them) and answers ``status`` (200). A
``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a daemon thread; ``stop()`` shuts it
down and joins the thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.standins.local_http import serve, stop_serving


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiverStandin:
    status: int = 200
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/jangar"

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.deliveries.append(Delivery("POST", self.path, headers, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server, self._thread = serve(Handler)
        return self.url

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server = None
        self._thread = None
