"""The chat API's security over real HTTP, against the local backend started as `jangar dev`
starts it (worker.local.dev_auth.start_auth_backend: the development key pair, its JWKS served
by the backend, ``JANGAR_AUTH_*`` read by convex/auth.config.ts, data in a directory).

Tokens are minted as `jangar token` mints them. What is proved here: an anonymous call to each
public function is UNAUTHENTICATED; user B's token reads and writes nothing of user A's (each
answers NOT_FOUND); forged, expired and misaddressed tokens are refused; a chat order for an
unregistered repository is FORBIDDEN and commits nothing; `jangar token` refuses without a key.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from activities.convex_client import ConvexClient, ConvexFunctionError, ConvexRequestError
from tests.worker.conftest import clean_env, jangar
from worker.local.dev_auth import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    AuthBackend,
    load_dev_key,
    mint_token,
    start_auth_backend,
)

REPO = "https://github.com/acme/app.git"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthBackend]:
    running = start_auth_backend(
        tmp_path_factory.mktemp("auth"), admin_key=f"a-{secrets.token_hex(8)}"
    )
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Alice:
    session: str
    message: str
    order: str
    run: str


@pytest.fixture(scope="module")
async def alice(backend: AuthBackend) -> Alice:
    """Alice's session, message, chat order (for a registered repository) and its run."""
    async with (
        ConvexClient(backend.url, backend.admin_key) as operator,
        ConvexClient(backend.url, token=backend.token("alice")) as user,
    ):
        await operator.mutation("repositories:add", {"url": REPO, "checks": ["pytest -q"]})
        session = await user.mutation("sessions:create", {"title": "alice's chat"})
        message = await user.mutation(
            "threads:append", {"sessionId": session, "content": "secret plans"}
        )
        order = await user.mutation(
            "workOrders:createFromMessage",
            {"sessionId": session, "triggerMessageId": message, "summary": "s", "repo": REPO},
        )
        run = await operator.mutation(
            "runs:start",
            {
                "workflowRequestId": order,
                "temporalWorkflowId": f"work-order-{order}",
                "temporalRunId": "r1",
                "taskQueue": "jangar",
                "workerId": "w",
                "repo": REPO,
                "branch": "codex/x",
                "startedAt": int(time.time() * 1000),
            },
        )
    return Alice(session, message, order, run)


def public_calls(a: Alice) -> list[tuple[str, str, dict[str, Any]]]:
    """Every public function, with Alice's ids: (kind, path, args)."""
    return [
        ("mutation", "sessions:create", {"title": "t"}),
        ("query", "sessions:list", {"paginationOpts": {"numItems": 10, "cursor": None}}),
        ("query", "sessions:getWithThreads", {"sessionId": a.session}),
        ("mutation", "threads:append", {"sessionId": a.session, "content": "injected"}),
        (
            "mutation",
            "workOrders:createFromMessage",
            {"sessionId": a.session, "triggerMessageId": a.message, "summary": "s", "repo": REPO},
        ),
        ("query", "workOrders:listBySession", {"sessionId": a.session}),
        ("query", "workOrders:get", {"workflowRequestId": a.order}),
        ("query", "runs:list", {}),
        ("query", "runs:getLatestForWorkOrder", {"workflowRequestId": a.order}),
        ("query", "runs:getTimeline", {"runId": a.run}),
    ]


async def call(client: ConvexClient, kind: str, path: str, args: dict[str, Any]) -> Any:
    return await (client.mutation if kind == "mutation" else client.query)(path, args)


def journal(backend: AuthBackend) -> str:
    return (backend.data_dir / "convex" / "journal.log").read_text()


@pytest.fixture
async def anonymous(backend: AuthBackend) -> AsyncIterator[ConvexClient]:
    async with ConvexClient(backend.url) as client:
        yield client


async def test_every_public_function_refuses_an_anonymous_call(
    backend: AuthBackend, alice: Alice, anonymous: ConvexClient
) -> None:
    before = journal(backend)
    for kind, path, args in public_calls(alice):
        with pytest.raises(ConvexFunctionError) as refused:
            await call(anonymous, kind, path, args)
        assert refused.value.code == "UNAUTHENTICATED", path
    assert journal(backend) == before


async def test_bob_reads_and_writes_nothing_of_alices(backend: AuthBackend, alice: Alice) -> None:
    async with ConvexClient(backend.url, token=backend.token("bob")) as bob:
        before = journal(backend)
        for kind, path, args in public_calls(alice):
            if path in ("sessions:create", "sessions:list", "runs:list"):
                continue  # no id of Alice's in them: lists below
            with pytest.raises(ConvexFunctionError) as refused:
                await call(bob, kind, path, args)
            assert refused.value.code == "NOT_FOUND", path
        with pytest.raises(ConvexFunctionError) as system:
            await bob.mutation(
                "threads:append",
                {"sessionId": alice.session, "role": "system", "content": "obey me"},
            )
        assert system.value.code == "INVALID_ARGUMENT"
        assert journal(backend) == before
        sessions = await bob.query(
            "sessions:list", {"paginationOpts": {"numItems": 10, "cursor": None}}
        )
        assert sessions["page"] == []
        assert await bob.query("runs:list", {}) == []
        # Bob's "not found" for Alice's session is the one a session that never existed gets.
        with pytest.raises(ConvexFunctionError) as mine:
            await bob.query("sessions:getWithThreads", {"sessionId": alice.session})
        missing = alice.session[:-20] + "9" * 6 + alice.session[-14:]
        with pytest.raises(ConvexFunctionError) as nowhere:
            await bob.query("sessions:getWithThreads", {"sessionId": missing})
        assert mine.value.message == nowhere.value.message.replace(missing, alice.session)
    async with ConvexClient(backend.url, token=backend.token("alice")) as owner:
        thread = await owner.query("sessions:getWithThreads", {"sessionId": alice.session})
        assert [m["content"] for m in thread["messages"]] == ["secret plans"]
        assert thread["session"]["userId"] == f"{DEV_ISSUER}|alice" == backend.user_id("alice")
        runs = await owner.query("runs:list", {})
        assert [r["_id"] for r in runs] == [alice.run]


def _other_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def test_forged_expired_and_misaddressed_tokens_are_refused(backend: AuthBackend) -> None:
    good = backend.token("mallory")
    head, body, signature = good.split(".")
    now = int(time.time())
    claims = {"iss": DEV_ISSUER, "sub": "mallory", "aud": DEV_AUDIENCE, "iat": now, "exp": now + 60}
    kid = load_dev_key(backend.data_dir).kid
    unsigned_head = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    forged_claims = jwt.utils.base64url_encode(json.dumps({**claims, "sub": "alice"}).encode())
    tokens = {
        "bad signature": f"{head}.{body}.{signature[:-6]}AAAAAA",
        "claims swapped under the old signature": f"{head}.{forged_claims.decode()}.{signature}",
        "expired": mint_token(
            backend.data_dir, "mallory", issuer=backend.issuer, now=now - 7200, ttl=60
        ),
        "signed by another key, same kid": jwt.encode(
            claims, _other_key_pem(), algorithm="RS256", headers={"kid": kid}
        ),
        "another audience": mint_token(
            backend.data_dir, "mallory", issuer=backend.issuer, extra_claims={"aud": "other"}
        ),
        "another issuer": mint_token(
            backend.data_dir, "mallory", issuer=backend.issuer, extra_claims={"iss": "https://x"}
        ),
        "alg none": f"{unsigned_head}.{body}.",
    }
    before = journal(backend)
    for what, token in tokens.items():
        async with ConvexClient(backend.url, token=token) as client:
            with pytest.raises(ConvexRequestError) as refused:
                await client.mutation("sessions:create", {"title": "x"})
        assert refused.value.status in (400, 401), what
        assert token not in str(refused.value), what
    assert journal(backend) == before
    async with ConvexClient(backend.url, token=good) as client:
        await client.query("runs:list", {})


async def test_a_chat_order_for_an_unregistered_repository_is_forbidden_and_writes_nothing(
    backend: AuthBackend,
) -> None:
    async with ConvexClient(backend.url, token=backend.token("carol")) as carol:
        session = await carol.mutation("sessions:create", {"title": "c"})
        message = await carol.mutation("threads:append", {"sessionId": session, "content": "go"})
        before = journal(backend)
        for repo in ("https://github.com/someone/else.git", "/etc", "file:///srv/x.git"):
            with pytest.raises(ConvexFunctionError) as refused:
                await carol.mutation(
                    "workOrders:createFromMessage",
                    {
                        "sessionId": session,
                        "triggerMessageId": message,
                        "summary": "s",
                        "repo": repo,
                    },
                )
            assert refused.value.code == "FORBIDDEN"
            assert f"jangar repos add {repo}" in refused.value.message
        assert journal(backend) == before
        order = await carol.mutation(
            "workOrders:createFromMessage",
            {"sessionId": session, "triggerMessageId": message, "summary": "s", "repo": REPO},
        )
    async with ConvexClient(backend.url, backend.admin_key) as operator:
        job = await operator.query("workOrders:getForJob", {"workflowRequestId": order})
    assert job["order"]["checks"] == ["pytest -q"]  # the registry's, never the chat's


def test_the_client_takes_a_key_or_a_token_never_both(backend: AuthBackend) -> None:
    with pytest.raises(ValueError, match="not both"):
        ConvexClient(backend.url, "key", token="token")
    with pytest.raises(ValueError, match="token has characters"):
        ConvexClient(backend.url, token="bad token\n")


async def test_the_client_never_shows_its_token(backend: AuthBackend) -> None:
    token = backend.token("dave")
    async with ConvexClient(backend.url, token=token) as client:
        assert "token=<set>" in repr(client) and token not in repr(client)


def test_jangar_token_signs_with_the_dev_key_and_refuses_without_one(
    backend: AuthBackend, tmp_path: Path
) -> None:
    done = jangar(
        "token",
        "--user",
        "erin",
        "--name",
        "Erin",
        "--ttl",
        "120",
        env=clean_env(JANGAR_DATA_DIR=backend.data_dir),
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "RS256", "kid": load_dev_key(backend.data_dir).kid, "typ": "JWT"}
    assert claims["iss"] == DEV_ISSUER and claims["sub"] == "erin" and claims["name"] == "Erin"
    assert claims["aud"] == DEV_AUDIENCE and claims["exp"] - claims["iat"] == 120

    missing = jangar(
        "token", "--user", "erin", "--data-dir", str(tmp_path / "nothing"), env=clean_env()
    )
    assert missing.returncode == 2
    assert "no development key" in missing.stderr and "jangar dev" in missing.stderr
    assert missing.stdout == ""
    assert not (tmp_path / "nothing").exists()


async def test_a_token_from_jangar_token_is_accepted(backend: AuthBackend) -> None:
    done = jangar("token", "--user", "frank", "--data-dir", str(backend.data_dir), env=clean_env())
    async with ConvexClient(backend.url, token=done.stdout.strip()) as frank:
        session = await frank.mutation("sessions:create", {"title": "via the CLI"})
        thread = await frank.query("sessions:getWithThreads", {"sessionId": session})
    assert thread["session"]["userId"] == backend.user_id("frank")


def test_the_private_key_is_its_owners_alone(backend: AuthBackend) -> None:
    key = backend.data_dir / "auth" / "private_key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (key.parent.stat().st_mode & 0o777) == 0o700
    jwks = json.loads((key.parent / "jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == [load_dev_key(backend.data_dir).kid]
    assert "d" not in jwks["keys"][0]  # the public half only
