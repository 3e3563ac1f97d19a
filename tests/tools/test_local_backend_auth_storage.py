"""The local backend's user auth, file storage and data directory, checked over real HTTP.

Servers are started as ``worker/local_convex.py`` starts them, on the fixture functions
(tests/tools/local_backend_fixture/convex, whose auth.config.ts reads environment variables) and
stopped by PID. Tokens are RS256 JWTs signed here with plain integer arithmetic (RSASSA-PKCS1-v1_5)
by a key pair Node makes for the session, so no JWT or crypto package is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.local.local_convex import (
    DEV_ADMIN_KEY,
    BackendStartError,
    RunningBackend,
    start_local_backend,
)

FIXTURE = Path(__file__).resolve().parent / "local_backend_fixture" / "convex"
JSON_HEADERS = {"Content-Type": "application/json"}
ISSUER = "https://issuer.fixture.test"  # the fixture's customJwt issuer (auth.config.ts default)
AUDIENCE = "audience-from-the-environment"  # FIXTURE_JWT_AUDIENCE, read by auth.config.ts
MAX_UPLOAD = 64 * 1024


# --- Keys and tokens -------------------------------------------------------------------------

_MAKE_KEY = """
const { generateKeyPairSync } = require("node:crypto");
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
process.stdout.write(JSON.stringify(privateKey.export({ format: "jwk" })));
"""
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


class RsaKey:
    """An RSA key pair from Node; signs RS256 with Python integers."""

    def __init__(self, kid: str) -> None:
        out = subprocess.run(
            ["node", "-e", _MAKE_KEY], check=True, capture_output=True, text=True, timeout=30
        )
        self.private: dict[str, str] = json.loads(out.stdout)
        self.kid = kid
        self.n = _b64url_int(self.private["n"])
        self.d = _b64url_int(self.private["d"])

    @property
    def public_jwk(self) -> dict[str, str]:
        return {
            "kty": "RSA",
            "n": self.private["n"],
            "e": self.private["e"],
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
        }

    def sign(self, data: bytes) -> bytes:
        size = (self.n.bit_length() + 7) // 8
        digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
        encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
        return pow(int.from_bytes(encoded, "big"), self.d, self.n).to_bytes(size, "big")

    def token(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = {"alg": "RS256", "typ": "JWT", "kid": self.kid, **(header or {})}
        signing_input = (
            f"{_b64url(json.dumps(head).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        return f"{signing_input}.{_b64url(self.sign(signing_input.encode()))}"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def key() -> RsaKey:
    return RsaKey("key-1")


def write_keys(path: Path, *keys: RsaKey) -> None:
    path.write_text(json.dumps({"keys": [k.public_jwk for k in keys]}))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, key: RsaKey) -> Path:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    write_keys(path, key)
    return path


@contextmanager
def backend_with(env: dict[str, str], **kwargs: Any) -> Iterator[RunningBackend]:
    """A fixture-functions server with extra environment variables; stopped by PID."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        backend = start_local_backend(admin_key=None, functions_dir=FIXTURE, **kwargs)
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def auth_backend(jwks_file: Path) -> Iterator[RunningBackend]:
    env = {
        "LOCAL_BACKEND_JWKS_FILE": str(jwks_file),
        "LOCAL_BACKEND_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "FIXTURE_JWT_AUDIENCE": AUDIENCE,  # auth.config.ts sees the server's environment
    }
    with backend_with(env) as backend:
        yield backend


@pytest.fixture
async def fx(auth_backend: RunningBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth_backend.url, timeout=10) as client:
        yield client


async def call(
    client: httpx.AsyncClient,
    route: str,
    path: str,
    args: dict[str, Any] | None = None,
    token: str | None = None,
    authorization: str | None = None,
) -> httpx.Response:
    headers = dict(JSON_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    body = json.dumps({"path": path, "args": args or {}, "format": "json"})
    return await client.post(f"/api/{route}", content=body, headers=headers)


def value(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "success", answer
    return answer["value"]


# --- Auth ------------------------------------------------------------------------------------


async def test_no_authorization_header_is_anonymous(fx: httpx.AsyncClient) -> None:
    assert value(await call(fx, "query", "fixture:whoami")) is None


async def test_a_valid_token_runs_the_function_as_its_user(
    fx: httpx.AsyncClient, key: RsaKey
) -> None:
    token = key.token(claims(name="Ada", email="ada@example.com", org={"id": 7}, jti="j"))
    expected = {
        "tokenIdentifier": f"{ISSUER}|user-42",
        "issuer": ISSUER,
        "subject": "user-42",
        "name": "Ada",
        "email": "ada@example.com",
        "org.id": 7.0,
    }
    assert value(await call(fx, "query", "fixture:whoami", token=token)) == expected
    assert value(await call(fx, "action", "fixture:whoamiFromAction", token=token)) == expected
    # auth.config.ts read FIXTURE_JWT_AUDIENCE from the server's environment: its default is out.
    stale = key.token(claims(aud="fixture-app"))
    assert (await call(fx, "query", "fixture:whoami", token=stale)).status_code == 401


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "InvalidAuthHeader"),
        ("bad signature", "InvalidAuthHeader"),
        ("unknown kid", "InvalidAuthHeader"),
        ("alg none", "InvalidAuthHeader"),
        ("wrong issuer", "NoAuthProvider"),
        ("wrong audience", "NoAuthProvider"),
        ("not a jwt", "InvalidAuthHeader"),
    ],
)
async def test_a_token_failing_any_check_is_refused_not_anonymous(
    fx: httpx.AsyncClient, key: RsaKey, case: str, code: str
) -> None:
    tokens: dict[str, Callable[[], str]] = {
        "expired": lambda: key.token(claims(exp=int(time.time()) - 60)),
        "bad signature": lambda: key.token(claims())[:-8] + "AAAAAAAA",
        "unknown kid": lambda: key.token(claims(), {"kid": "nobody"}),
        "alg none": lambda: key.token(claims(), {"alg": "none"}).rsplit(".", 1)[0] + ".",
        "wrong issuer": lambda: key.token(claims(iss="https://evil.example.com")),
        "wrong audience": lambda: key.token(claims(aud="someone-else")),
        "not a jwt": lambda: "definitely-not-a-jwt",
    }
    response = await call(fx, "query", "fixture:whoami", token=tokens[case]())
    assert response.status_code == 401
    answer = response.json()
    assert set(answer) == {"code", "message"}
    assert answer["code"] == code


async def test_an_expired_token_says_when_it_expired(fx: httpx.AsyncClient, key: RsaKey) -> None:
    response = await call(fx, "query", "fixture:whoami", token=key.token(claims(exp=1_700_000_000)))
    assert response.json() == {
        "code": "InvalidAuthHeader",
        "message": "Could not validate token: Token expired at 2023-11-14 22:13:20 UTC",
    }


async def test_the_oidc_form_discovers_the_servers_own_keys(
    fx: httpx.AsyncClient, key: RsaKey, auth_backend: RunningBackend
) -> None:
    """`{domain: CONVEX_SITE_URL, applicationID: "convex"}`, as Convex Auth configures it."""
    token = key.token(
        claims(iss=auth_backend.url, aud="convex", email="ada@example.com", email_verified=True)
    )
    assert value(await call(fx, "query", "fixture:whoami", token=token)) == {
        "tokenIdentifier": f"{auth_backend.url}|user-42",
        "issuer": auth_backend.url,
        "subject": "user-42",
        "email": "ada@example.com",
        "emailVerified": True,
    }


async def test_a_rotated_key_is_accepted_at_once(
    fx: httpx.AsyncClient, key: RsaKey, jwks_file: Path
) -> None:
    assert value(await call(fx, "query", "fixture:whoami", token=key.token(claims()))) is not None
    rotated = RsaKey("key-2")
    write_keys(jwks_file, key, rotated)
    try:
        identity = value(await call(fx, "query", "fixture:whoami", token=rotated.token(claims())))
        assert identity["subject"] == "user-42"
    finally:
        write_keys(jwks_file, key)


async def test_the_admin_key_still_works_and_carries_no_user(fx: httpx.AsyncClient) -> None:
    admin = f"Convex {DEV_ADMIN_KEY}"
    assert value(await call(fx, "query", "fixture:whoami", authorization=admin)) is None
    assert (
        value(await call(fx, "query", "fixture:secret", authorization=admin)) == "internal answer"
    )


async def test_the_jwks_file_is_served(fx: httpx.AsyncClient, jwks_file: Path) -> None:
    response = await fx.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == read_json(jwks_file)
    discovery = (await fx.get("/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == str(fx.base_url).rstrip("/")
    assert discovery["jwks_uri"] == f"{discovery['issuer']}/.well-known/jwks.json"


async def test_without_auth_config_a_token_is_refused(
    convex_backend: RunningBackend, key: RsaKey
) -> None:
    """The project's convex/ has no auth.config.ts: Convex refuses every token, as here."""
    async with httpx.AsyncClient(base_url=convex_backend.url, timeout=10) as client:
        response = await call(client, "query", "runs:list", token=key.token(claims()))
        assert response.status_code == 401
        assert response.json() == {
            "code": "NoAuthProvider",
            "message": "No auth provider found matching the given token (no providers "
            "configured). Check convex/auth.config.ts.",
        }
        assert (await client.get("/.well-known/jwks.json")).status_code == 404


# --- File storage ----------------------------------------------------------------------------


async def upload(
    client: httpx.AsyncClient, data: bytes, content_type: str | None, **headers: str
) -> httpx.Response:
    url = value(await call(client, "mutation", "files:generateUploadUrl"))
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    return await client.post(url, content=data, headers=sent)


async def test_upload_then_download_with_convexs_shapes(
    fx: httpx.AsyncClient, auth_backend: RunningBackend
) -> None:
    data = bytes(range(256)) * 3
    url = value(await call(fx, "mutation", "files:generateUploadUrl"))
    assert url.startswith(f"{auth_backend.url}/api/storage/upload?token=")
    response = await fx.post(url, content=data, headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    storage_id = response.json()["storageId"]
    assert list(response.json()) == ["storageId"]

    seen = value(await call(fx, "query", "files:describe", {"id": storage_id}))
    sha = hashlib.sha256(data)
    assert seen["metadata"] == {
        "storageId": storage_id,
        "sha256": sha.hexdigest(),
        "size": float(len(data)),
        "contentType": "image/png",
    }
    assert seen["doc"]["_id"] == storage_id
    assert seen["doc"]["sha256"] == base64.b64encode(sha.digest()).decode()
    assert seen["doc"]["size"] == len(data)
    assert seen["url"].startswith(f"{auth_backend.url}/api/storage/")

    got = await fx.get(seen["url"])
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["digest"] == f"sha-256={seen['doc']['sha256']}"
    assert got.headers["cache-control"] == "private, max-age=2592000"
    head = await fx.head(seen["url"])
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    part = await fx.get(seen["url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"


async def test_a_file_stored_by_an_action_is_served_too(fx: httpx.AsyncClient) -> None:
    stored = value(
        await call(fx, "action", "files:storeText", {"text": "héllo", "contentType": "text/plain"})
    )
    got = await fx.get(stored["url"])
    assert got.content == "héllo".encode()
    assert got.headers["content-type"] == "text/plain"
    assert value(await call(fx, "action", "files:readText", {"id": stored["id"]})) == "héllo"


async def test_upload_refusals(fx: httpx.AsyncClient) -> None:
    missing = await fx.post("/api/storage/upload", content=b"x")
    assert missing.status_code == 400
    assert missing.json()["code"] == "BadQueryArgs"

    url = value(await call(fx, "mutation", "files:generateUploadUrl"))
    forged = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    refused = await fx.post(forged, content=b"x")
    assert refused.status_code == 401
    assert refused.json() == {
        "code": "StorageTokenInvalid",
        "message": "Couldn't decode the StoreFileAuthorization token",
    }

    too_big = await upload(fx, b"x" * (MAX_UPLOAD + 1), "application/octet-stream")
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "PayloadTooLarge"
    assert "LOCAL_BACKEND_MAX_UPLOAD_BYTES" in too_big.json()["message"]
    assert (await upload(fx, b"x" * MAX_UPLOAD, None)).status_code == 200

    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    mismatch = await upload(fx, b"data", "text/plain", Digest=f"sha-256={wrong}")
    assert mismatch.status_code == 400
    assert mismatch.json()["code"] == "Sha256Mismatch"
    right = base64.b64encode(hashlib.sha256(b"data").digest()).decode()
    assert (await upload(fx, b"data", "text/plain", Digest=f"sha-256={right}")).status_code == 200


async def test_download_refusals(fx: httpx.AsyncClient) -> None:
    bad = await fx.get("/api/storage/not-a-uuid")
    assert bad.status_code == 400
    assert bad.json()["code"] == "InvalidStoragePath"
    unknown = "/api/storage/0b3a4c52-1f2e-4d5c-8a9b-0c1d2e3f4a5b"
    assert (await fx.get(unknown)).json() == {
        "code": "FileNotFound",
        "message": "File 0b3a4c52-1f2e-4d5c-8a9b-0c1d2e3f4a5b not found",
    }
    storage_id = (await upload(fx, b"short-lived", "text/plain")).json()["storageId"]
    url = value(await call(fx, "query", "files:describe", {"id": storage_id}))["url"]
    assert (await fx.get(url)).status_code == 200
    value(await call(fx, "mutation", "files:remove", {"id": storage_id}))
    assert (await fx.get(url)).status_code == 404
    assert value(await call(fx, "query", "files:describe", {"id": storage_id}))["url"] is None


async def test_browsers_may_call_upload_and_download_cross_origin(fx: httpx.AsyncClient) -> None:
    origin = {"Origin": "http://localhost:5173"}
    for path in ("/api/storage/upload", "/api/mutation"):
        preflight = await fx.request(
            "OPTIONS", path, headers={**origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
    url = value(await call(fx, "mutation", "files:generateUploadUrl"))
    uploaded = await fx.post(url, content=b"cors", headers=origin)
    assert uploaded.headers["access-control-allow-origin"] == "*"
    refused = await fx.get("/api/storage/not-a-uuid", headers=origin)
    assert refused.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in (await fx.get("/version")).headers


# --- Data directory --------------------------------------------------------------------------


async def _snapshot(client: httpx.AsyncClient) -> tuple[list[Any], list[Any]]:
    blobs = value(await call(client, "query", "fixture:listBlobs"))
    files = value(await call(client, "query", "files:list"))
    return blobs, files


def _counter(document_id: str) -> int:
    """The local backend's ids are a counter followed by the table name."""
    match = re.match(r"\d+", document_id)
    assert match is not None, document_id
    return int(match.group())


async def test_a_restart_keeps_documents_files_and_never_reuses_ids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with backend_with({}, data_dir=data) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            ids = [
                value(await call(client, "mutation", "fixture:insertBlob", {"size": n}))
                for n in (1, 2)
            ]
            failed = (await call(client, "mutation", "fixture:insertThenFail")).json()
            rolled_back = failed["errorMessage"].split("rolled back ")[1].split()[0]
            storage_id = (await upload(client, b"kept bytes", "text/plain")).json()["storageId"]
            file_url = value(await call(client, "query", "files:describe", {"id": storage_id}))[
                "url"
            ]
            later_upload = value(await call(client, "mutation", "files:generateUploadUrl"))
            before = await _snapshot(client)
        port = first.port

    with backend_with({}, port=port, data_dir=data) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
            assert await _snapshot(client) == before
            got = await client.get(file_url)  # the URL handed out before the restart still works
            assert got.content == b"kept bytes"
            assert got.headers["content-type"] == "text/plain"
            assert (await client.post(later_upload, content=b"late")).status_code == 200
            new_id = value(await call(client, "mutation", "fixture:insertBlob", {"size": 3}))
            assert new_id not in [*ids, rolled_back]
            assert _counter(new_id) > _counter(rolled_back)
        assert "3 documents and 1 stored files restored (4 journal entries)" in second.log()


async def test_a_killed_server_keeps_every_write_it_answered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with backend_with({}, data_dir=data) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            for n in range(5):
                value(await call(client, "mutation", "fixture:insertBlob", {"size": n}))
            before = await _snapshot(client)
        os.killpg(first.pid, signal.SIGKILL)  # the group this test started: tsx and its node
        first.process.wait(timeout=10)
    with (data / "journal.log").open("a") as journal:
        journal.write('0123456789abcdef {"n":1,"c":0,"w":[["half')  # a torn last append

    with backend_with({}, data_dir=data) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
            assert await _snapshot(client) == before
        assert "dropped an unterminated last line" in second.log()


def test_two_servers_never_share_a_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (
        backend_with({}, data_dir=data),
        pytest.raises(BackendStartError, match="is in use by another local backend"),
        backend_with({}, data_dir=data, timeout=30),
    ):
        pass
