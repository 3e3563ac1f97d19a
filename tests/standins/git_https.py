"""STAND-IN for a GitHub-like git host over HTTPS, served locally by tests.

Not GitHub: real git's smart HTTP protocol, served by real ``git http-backend`` (run as a CGI
program per request) over a directory of bare repositories (``<root>/<owner>/<name>.git``),
behind TLS with a certificate from a private CA made at start (the ``cryptography`` package).
It stands for a GitHub Enterprise whose certificate an internal CA signed: a worker reaches
it only when told to trust that CA (``JANGAR_GIT_CA_FILE``), and only with the token.

Like GitHub for a private repository, every request must carry HTTP Basic credentials whose
password is the token (git sends ``x-access-token:<token>``); anything else is answered 401, so a
clone or push that succeeds proves the worker's git sent the token to this host over https.
Pushes are accepted for authenticated requests (``REMOTE_USER`` is set for http-backend).

A ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a daemon thread; ``stop()`` shuts it
down and joins the thread. Each request is recorded (method, path, service, whether it was
authorized).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.standins.local_http import serve, stop_serving


@dataclass(frozen=True)
class Certificates:
    """A private CA and a server certificate it signed for 127.0.0.1 (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path


def make_certificates(directory: Path, *, host: str = "127.0.0.1") -> Certificates:
    """A CA (valid one day) and a certificate for ``host`` (an IP address SAN) it signed."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Jangar test private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    found = Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
    )
    found.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    found.server_key.chmod(0o600)
    return found


@dataclass
class GitRequest:
    method: str
    path: str
    service: str | None
    authorized: bool
    status: int


@dataclass
class GitHttpsStandin:
    """See the module docstring. ``root`` holds ``<owner>/<name>.git`` bare repositories."""

    root: Path
    certificates: Certificates
    token: str = "test-token"
    requests: list[GitRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    def url(self, owner: str, name: str) -> str:
        """The https clone URL of ``<owner>/<name>.git``."""
        return f"https://127.0.0.1:{self.port}/{owner}/{name}.git"

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server, self._thread = serve(
            Handler, tls=(self.certificates.server_cert, self.certificates.server_key)
        )

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server = None
        self._thread = None

    def pushes(self) -> list[GitRequest]:
        """Authorized receive-pack POSTs: one per push."""
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.endswith("/git-receive-pack") and r.status == 200
        ]

    # --- request handling ---------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return bool(user) and password == self.token

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        service = parse_qs(parts.query).get("service", [None])[-1]
        if service is None and method == "POST":
            service = parts.path.rsplit("/", 1)[-1]
        body = _read_body(handler)
        authorized = self._authorized(handler.headers.get("Authorization"))
        if not authorized:
            status = 401
            _respond(
                handler,
                401,
                {"WWW-Authenticate": 'Basic realm="stand-in git host"'},
                b"authentication required\n",
            )
        else:
            status, headers, data = self._cgi(handler, method, parts.path, parts.query, body)
            _respond(handler, status, headers, data)
        with self._lock:
            self.requests.append(GitRequest(method, parts.path, service, authorized, status))

    def _cgi(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: str,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        """Run ``git http-backend`` for one request (RFC 3875 variables), parse its answer."""
        git = shutil.which("git")
        assert git is not None, "git is not installed"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for name in ("Content-Encoding", "Git-Protocol"):
            if handler.headers.get(name):
                env["HTTP_" + name.upper().replace("-", "_")] = handler.headers[name]
        done = subprocess.run(
            [git, "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, sep, data = done.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, data = done.stdout.partition(b"\n\n")
        status = 200
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if done.returncode != 0 and status == 200:
            return 500, {}, done.stderr or b"git http-backend failed\n"
        return status, headers, data


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked (git chunks large pushes)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _respond(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()
