"""Shared fixtures: one local Convex backend per test session, and clients for it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from activities.convex_client import ConvexClient
from tests.convex_backend import RunningBackend, start_local_backend


@pytest.fixture(scope="session")
def convex_backend() -> Iterator[RunningBackend]:
    """The local backend on a free port with a random admin key. Shared: use unique ids."""
    backend = start_local_backend(admin_key=f"test-{secrets.token_hex(16)}")
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
async def convex_client(convex_backend: RunningBackend) -> AsyncIterator[ConvexClient]:
    """A client holding the admin key: may call internal functions, as the worker does."""
    async with ConvexClient(convex_backend.url, convex_backend.admin_key) as client:
        yield client


@pytest.fixture
async def anon_client(convex_backend: RunningBackend) -> AsyncIterator[ConvexClient]:
    """A client without a key: public functions only, as a browser would be."""
    async with ConvexClient(convex_backend.url) as client:
        yield client
