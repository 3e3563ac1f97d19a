"""A development identity provider: a key pair under the data directory, its JWKS, tokens.

Convex verifies each public call's ``Authorization: Bearer <JWT>`` against the provider in
convex/auth.config.ts, configured by the deployment's ``JANGAR_AUTH_*`` variables. Production
points those at its identity provider (Clerk, Auth0, WorkOS, its own OIDC issuer). ``jangar
dev``, ``make run`` and the tests are their own provider instead:

- ``<data dir>/auth/private_key.pem`` (mode 0600): an RSA key made on first use, kept after;
- ``<data dir>/auth/jwks.json``: its public half, served by the local backend at
  ``/.well-known/jwks.json`` (``LOCAL_BACKEND_JWKS_FILE``), the provider's JWKS URL.

The issuer is a fixed name, :data:`DEV_ISSUER` (a ``.localhost`` name: nothing answers there, and
nothing needs to: the keys come from the JWKS URL), so users keep their id, and a token stays
valid, when the backend restarts on another port. :func:`start_auth_backend` starts the local
backend this way (``jangar dev``, ``make run`` and the tests share it); :func:`mint_token` signs a
token. None of this is for production: the key is a file on the developer's disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from worker.local.local_convex import BackendStartError, RunningBackend, start_local_backend
from worker.local.processes import free_port

ALGORITHM = "RS256"
DEV_ISSUER = "https://jangar-dev.localhost"
"""The ``iss`` of development tokens: a user ``alice`` is ``https://jangar-dev.localhost|alice``."""
DEV_AUDIENCE = "jangar-dev"
"""The ``aud`` of development tokens (the provider's ``applicationID``)."""
DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 30 * 24 * 3600
PRIVATE_KEY_FILE = "private_key.pem"
JWKS_FILE = "jwks.json"


class DevAuthMissing(Exception):
    """No development key in the data directory: start ``jangar dev`` once."""


def auth_dir(data_dir: Path) -> Path:
    """Where the development key pair lives: ``<data dir>/auth``."""
    return data_dir.expanduser().resolve() / "auth"


@dataclass(frozen=True)
class DevKey:
    """The development signing key: its key id and its private key in PEM."""

    kid: str
    private_pem: bytes = b""

    def __repr__(self) -> str:
        return f"DevKey(kid={self.kid!r})"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(private_pem: bytes) -> dict[str, str]:
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DevAuthMissing("the development key is not an RSA key; delete it to make a new one")
    numbers = key.public_key().public_numbers()

    def encode(value: int) -> str:
        return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    jwk = {"kty": "RSA", "n": encode(numbers.n), "e": encode(numbers.e)}
    # RFC 7638 thumbprint: a key id that names exactly this key.
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64url(hashlib.sha256(canonical.encode()).digest())[:16]
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def ensure_dev_key(data_dir: Path) -> DevKey:
    """The data directory's key pair, made on first use (the private key readable by its owner
    only); ``jwks.json`` is rewritten from it each time."""
    directory = auth_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / PRIVATE_KEY_FILE
    if not path.exists():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    key = load_dev_key(data_dir)
    jwks = {"keys": [_public_jwk(key.private_pem)]}
    scratch = directory / f".{JWKS_FILE}.tmp"
    scratch.write_text(json.dumps(jwks, indent=2) + "\n")
    scratch.replace(directory / JWKS_FILE)
    return key


def load_dev_key(data_dir: Path) -> DevKey:
    """The data directory's key; :class:`DevAuthMissing` when there is none."""
    path = auth_dir(data_dir) / PRIVATE_KEY_FILE
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise DevAuthMissing(
            f"no development key in {path.parent}: start `jangar dev --data-dir "
            f"{data_dir}` once to make one (in production, tokens come from your identity "
            "provider)"
        ) from None
    return DevKey(kid=_public_jwk(pem)["kid"], private_pem=pem)


@dataclass(frozen=True)
class DevIssuer:
    """Who signs development tokens, as the local backend's auth.config.ts is told."""

    issuer: str
    audience: str
    jwks_url: str

    def env(self) -> dict[str, str]:
        """The ``JANGAR_AUTH_*`` variables convex/auth.config.ts reads."""
        return {
            "JANGAR_AUTH_ISSUER": self.issuer,
            "JANGAR_AUTH_JWKS_URL": self.jwks_url,
            "JANGAR_AUTH_AUDIENCE": self.audience,
            "JANGAR_AUTH_ALGORITHM": ALGORITHM,
        }


def issuer_for(port: int) -> DevIssuer:
    """The development provider of a local backend on ``port``: its keys are served there."""
    return DevIssuer(DEV_ISSUER, DEV_AUDIENCE, f"http://127.0.0.1:{port}/.well-known/jwks.json")


def mint_token(
    data_dir: Path,
    user: str,
    *,
    name: str | None = None,
    ttl: float = DEFAULT_TTL_SECONDS,
    issuer: DevIssuer | None = None,
    now: float | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A token for ``user`` (its ``sub``), signed with the data directory's key, valid ``ttl``
    seconds. The user Convex sees is ``<issuer>|<user>`` (:func:`user_id`).
    :class:`DevAuthMissing` without a key."""
    if not user or not user.strip():
        raise ValueError("the user id must not be empty")
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"the lifetime must be between 1 second and {MAX_TTL_SECONDS} seconds")
    key = load_dev_key(data_dir)
    issuer = issuer or issuer_for(0)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer.issuer,
        "sub": user,
        "aud": issuer.audience,
        "iat": issued,
        "exp": issued + int(ttl),
    }
    if name:
        claims["name"] = name
    claims.update(extra_claims or {})
    return jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.kid})


def user_id(user: str, issuer: str = DEV_ISSUER) -> str:
    """The user id Convex derives from a development token for ``user`` (its tokenIdentifier)."""
    return f"{issuer}|{user}"


@dataclass
class AuthBackend:
    """A local backend that verifies development tokens, and the issuer it trusts."""

    backend: RunningBackend
    issuer: DevIssuer
    data_dir: Path

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def pid(self) -> int:
        return self.backend.pid

    @property
    def admin_key(self) -> str | None:
        return self.backend.admin_key

    def token(self, user: str, *, name: str | None = None, ttl: float = DEFAULT_TTL_SECONDS) -> str:
        """A token for ``user`` that this backend accepts."""
        return mint_token(self.data_dir, user, name=name, ttl=ttl, issuer=self.issuer)

    def user_id(self, user: str) -> str:
        """The user id Convex records for ``user``'s calls."""
        return user_id(user, self.issuer.issuer)

    def stop(self) -> int:
        return self.backend.stop()


def start_auth_backend(
    data_dir: Path,
    *,
    admin_key: str | None,
    port: int = 0,
    persist: bool = True,
    timeout: float = 60.0,
) -> AuthBackend:
    """Start the local backend as ``jangar dev`` does: verifying tokens signed with the data
    directory's development key (made if missing), and, with ``persist``, keeping its documents
    in ``<data dir>/convex`` across restarts. ``port`` 0 picks a free port (chosen before the
    start, since the JWKS URL names it; a start that loses the port to another process is tried
    again on another)."""
    ensure_dev_key(data_dir)
    jwks_file = auth_dir(data_dir) / JWKS_FILE
    attempts = 3 if port == 0 else 1
    for attempt in range(attempts):
        chosen = port or free_port()
        issuer = issuer_for(chosen)
        env = {"LOCAL_BACKEND_JWKS_FILE": str(jwks_file), **issuer.env()}
        try:
            backend = start_local_backend(
                admin_key=admin_key,
                port=chosen,
                data_dir=data_dir.expanduser().resolve() / "convex" if persist else None,
                env=env,
                timeout=timeout,
            )
        except BackendStartError:
            if attempt + 1 == attempts:
                raise
            continue
        return AuthBackend(backend, issuer, data_dir)
    raise AssertionError("unreachable")  # pragma: no cover
