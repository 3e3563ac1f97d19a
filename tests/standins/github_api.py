"""STAND-IN for the GitHub REST API's pull request endpoints, served locally by tests.

Not GitHub: just enough of ``GET``/``POST /repos/{owner}/{repo}/pulls`` and
``PATCH /repos/{owner}/{repo}/pulls/{number}`` (a new title or body) to test
``open_pull_request`` over real HTTP. A ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in
a daemon thread; ``stop()`` shuts it down and joins the thread (tests call it in teardown).

It records every request (method, path, query, Authorization header, JSON body), keeps pull
requests per repository, checks ``Authorization: Bearer <token>`` (401 otherwise), answers
404 for repositories it does not know, and lets a test inject failures: ``fail_next`` (a list
of status codes answered, in order, before normal service) and ``race_on_create`` (a POST
creates the pull request but answers 422 "already exists", as when another attempt won).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins.local_http import serve, stop_serving


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: dict[str, Any] | None


@dataclass
class GitHubApiStandin:
    token: str = "test-token"
    repos: set[str] = field(default_factory=lambda: {"octo/widgets"})
    requests: list[RecordedRequest] = field(default_factory=list)
    pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    race_on_create: bool = False
    tls: tuple[Path, Path] | None = None
    """(certificate, key) PEM files: serve https (a GitHub Enterprise behind a private CA)."""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def do_PATCH(self) -> None:
                standin._handle(self, "PATCH")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server, self._thread = serve(Handler, tls=self.tls)
        return self.url

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server = None
        self._thread = None

    def add_pull(self, repo: str, head: str, base: str, title: str = "existing") -> dict[str, Any]:
        with self._lock:
            return self._create(repo, {"head": head, "base": base, "title": title})

    def posts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def _patch(self, repo: str, number: int, body: dict[str, Any]) -> tuple[int, Any]:
        for pr in self.pulls.get(repo, []):
            if pr["number"] == number:
                for key in ("title", "body"):
                    if key in body:
                        pr[key] = body[key]
                return 200, pr
        return 404, {"message": "Not Found"}

    # --- request handling ---------------------------------------------------------------

    def _create(self, repo: str, body: dict[str, Any]) -> dict[str, Any]:
        pulls = self.pulls.setdefault(repo, [])
        number = sum(len(p) for p in self.pulls.values()) + 1
        owner = repo.split("/")[0]
        pr = {
            "number": number,
            "state": "open",
            "title": body.get("title", ""),
            "body": body.get("body", ""),
            "draft": bool(body.get("draft", False)),
            "html_url": f"https://github.example/{repo}/pull/{number}",
            "head": {"ref": body["head"], "label": f"{owner}:{body['head']}"},
            "base": {"ref": body["base"]},
        }
        pulls.append(pr)
        return pr

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body: dict[str, Any] | None = None
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            body = json.loads(handler.rfile.read(length))
        auth = handler.headers.get("Authorization")
        with self._lock:
            self.requests.append(RecordedRequest(method, parts.path, query, auth, body))
            status, answer = self._answer(method, parts.path, query, auth, body)
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        auth: str | None,
        body: dict[str, Any] | None,
    ) -> tuple[int, Any]:
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, {"message": f"stand-in failure {status}"}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        segments = path.strip("/").split("/")
        if method == "PATCH" and len(segments) == 5 and segments[4].isdigit():
            return self._patch(f"{segments[1]}/{segments[2]}", int(segments[4]), body or {})
        if len(segments) != 4 or segments[0] != "repos" or segments[3] != "pulls":
            return 404, {"message": "Not Found"}
        repo = f"{segments[1]}/{segments[2]}"
        if repo not in self.repos:
            return 404, {"message": "Not Found"}
        if method == "GET":
            owner = repo.split("/")[0]
            head = query.get("head")
            state = query.get("state", "open")
            found = [
                pr
                for pr in self.pulls.get(repo, [])
                if (state == "all" or pr["state"] == state)
                and (head is None or head == f"{owner}:{pr['head']['ref']}")
            ]
            return 200, found
        assert body is not None
        if not body.get("head") or not body.get("base") or not body.get("title"):
            return 422, {"message": "Validation Failed", "errors": [{"code": "missing_field"}]}
        if body["head"] == body["base"]:
            return 422, {
                "message": "Validation Failed",
                "errors": [{"message": f"No commits between {body['base']} and {body['head']}"}],
            }
        open_same = [
            pr
            for pr in self.pulls.get(repo, [])
            if pr["state"] == "open" and pr["head"]["ref"] == body["head"]
        ]
        if open_same or self.race_on_create:
            if not open_same:
                self._create(repo, body)
            owner = repo.split("/")[0]
            return 422, {
                "message": "Validation Failed",
                "errors": [
                    {"message": f"A pull request already exists for {owner}:{body['head']}."}
                ],
            }
        return 201, self._create(repo, body)
