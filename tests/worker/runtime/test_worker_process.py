"""`jangar worker` as a process: health, readiness, metrics, JSON logs, SIGTERM, bad settings.

The worker runs as the console script against the real Temporal dev server and a local Convex
backend. The module's main worker has both servers to itself: its dispatcher must not meet other
tests' orders, the last test stops its Convex backend, and the local backend's ids are a
counter, so two backends behind one Temporal server would hand out the same workflow ids.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.convex_client import ConvexClient
from tests.git_repos import make_bare_repo
from tests.processes import pids_with_env
from tests.worker.conftest import (
    STANDIN_COMMAND,
    Background,
    clean_env,
    create_order,
    jangar,
    operator_env,
    start_jangar,
    unique_queue,
    wait_until,
    worker_env,
)
from worker.local.local_convex import RunningBackend, start_local_backend
from worker.local.processes import ManagedProcess, free_port, start_temporal_dev_server

GRACE = 3.0


@dataclass
class RunningWorker:
    process: Background
    backend: RunningBackend
    health: str
    metrics: str
    admin_key: str
    data_dir: Path
    env_dump: Path
    base: Path


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    """`jangar worker` with its dispatcher, on a Temporal server and Convex backend of its own."""
    base = tmp_path_factory.mktemp("worker-process")
    admin_key = f"secret-admin-{secrets.token_hex(12)}"
    temporal = start_temporal_dev_server(base / "temporal")
    backend = start_local_backend(admin_key=admin_key)
    health_port, metrics_port = free_port(), free_port()
    env_dump = base / "data" / "workspaces"  # the agent writes its env into its workspace
    try:
        process = start_jangar(
            "worker",
            env=clean_env(
                TEMPORAL_ADDRESS=temporal.address,
                TEMPORAL_TASK_QUEUE=unique_queue("proc"),
                CONVEX_URL=backend.url,
                CONVEX_ADMIN_KEY=admin_key,
                HEALTH_HOST="127.0.0.1",
                HEALTH_PORT=health_port,
                METRICS_PORT=metrics_port,
                JANGAR_DATA_DIR=base / "data",
                JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
                JANGAR_AGENT_ENV_ALLOW="CODEX_STANDIN_*",
                CODEX_STANDIN_ENV_DUMP="agent-env.json",
                DISPATCHER_POLL_SECONDS="0.2",
                SHUTDOWN_GRACE_SECONDS=GRACE,
            ),
            logs=base / "logs",
        )
        try:
            process.wait_for('"event": "worker started"')
            yield RunningWorker(
                process,
                backend,
                f"http://127.0.0.1:{health_port}",
                f"http://127.0.0.1:{metrics_port}/metrics",
                admin_key,
                base / "data",
                env_dump,
                base,
            )
        finally:
            process.stop()
    finally:
        backend.stop()
        temporal.stop()


@dataclass
class FinishedJob:
    order_id: str
    run: dict[str, Any]


@pytest.fixture(scope="module")
async def finished_job(worker: RunningWorker) -> FinishedJob:
    """A work order an operator submitted; the worker's own dispatcher starts it."""
    repo = await asyncio.to_thread(make_bare_repo, worker.base)
    async with ConvexClient(worker.backend.url, worker.admin_key) as operator:
        order_id = await create_order(operator, str(repo), "Add a NOTES.md")
        latest: dict[str, Any] = {}

        async def finished() -> bool:
            run = await operator.query(
                "runs:getLatestForWorkOrderAsOperator", {"workflowRequestId": order_id}
            )
            latest["run"] = run
            return run is not None and run["status"] in ("succeeded", "failed", "canceled")

        await wait_until(finished, within=90, what="the dispatched job to finish", interval=0.2)
        return FinishedJob(order_id, latest["run"])


def test_livez_and_readyz_answer_200_when_temporal_and_convex_are_up(
    worker: RunningWorker,
) -> None:
    livez = httpx.get(f"{worker.health}/livez")
    assert (livez.status_code, livez.json()) == (200, {"status": "alive"})
    readyz = httpx.get(f"{worker.health}/readyz")
    assert readyz.status_code == 200, readyz.text
    assert readyz.json() == {"ready": True, "checks": {"temporal": "ok", "convex": "ok"}}
    assert httpx.get(f"{worker.health}/nowhere").status_code == 404
    assert httpx.post(f"{worker.health}/livez").status_code == 405


def test_metrics_port_serves_temporal_runtime_metrics(worker: RunningWorker) -> None:
    deadline = time.monotonic() + 20
    while True:
        response = httpx.get(worker.metrics)
        assert response.status_code == 200
        names = {
            line.split("{")[0].split()[0]
            for line in response.text.splitlines()
            if line and not line.startswith("#")
        }
        if any(name.startswith("temporal_") for name in names):
            break
        assert time.monotonic() < deadline, response.text[:2000]
        time.sleep(0.5)
    assert any(name.startswith("temporal_") and "poll" in name for name in names), names


def test_embedded_dispatcher_runs_the_job(finished_job: FinishedJob) -> None:
    assert finished_job.run["status"] == "succeeded"
    assert finished_job.run["temporalWorkflowId"] == f"work-order-{finished_job.order_id}"


def test_logs_are_json_lines_and_activity_lines_carry_workflow_run_and_activity(
    worker: RunningWorker, finished_job: FinishedJob
) -> None:
    records = worker.process.json_lines()  # fails on any line that is not JSON
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)
    workflow_id = finished_job.run["temporalWorkflowId"]
    run_id = finished_job.run["temporalRunId"]
    mine = [r for r in records if r.get("workflow_id") == workflow_id]
    activity_types = {r.get("activity_type") for r in mine}
    assert {"prepare_workspace", "run_agent"} <= activity_types, mine
    for record in mine:
        if record.get("activity_type"):
            assert record["run_id"] == run_id, record
    agent = [r for r in mine if r["event"] == "agent_starting"]
    assert agent and agent[0]["activity_type"] == "run_agent"
    dispatched = [r for r in records if r["event"] == "work order dispatched"]
    assert any(r.get("workflow_id") == workflow_id for r in dispatched)


def test_admin_key_never_reaches_logs_or_the_agent(
    worker: RunningWorker, finished_job: FinishedJob
) -> None:
    assert finished_job.run["status"] == "succeeded"
    assert worker.admin_key not in worker.process.stderr()
    assert worker.admin_key not in worker.process.stdout()
    for path in worker.data_dir.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".patch", ".json"):
            assert worker.admin_key not in path.read_text(errors="replace"), path
    [dump] = worker.env_dump.glob(f"{finished_job.order_id}/agent-env.json")
    assert worker.admin_key not in dump.read_text()  # in no value, whole or part
    agent_env = json.loads(dump.read_text())
    assert not [name for name in agent_env if name.startswith(("CONVEX_", "TEMPORAL_"))]


async def test_sigterm_during_a_job_stops_within_the_grace_period_with_exit_0(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    op_convex_client: ConvexClient,
    tmp_path: Path,
) -> None:
    """SIGTERM while the agent runs: the worker stops polling, hands the agent over at once
    (the agent is stopped and the step fails as the retryable WorkerShutdown, for another
    worker to take from its checkpoint) and exits 0 well within the grace period."""
    from temporalio.client import Client

    from worker.runtime.temporal_client import DATA_CONVERTER

    env = operator_env(
        op_temporal.address,
        op_convex,
        queue="sigterm",
        data_dir=tmp_path / "data",
        JANGAR_CODEX_COMMAND=STANDIN_COMMAND,
    )
    marker = secrets.token_hex(8)  # found in the agent's environment, wherever its pid lives
    process = start_jangar(
        "worker",
        env=env
        | worker_env(
            SHUTDOWN_GRACE_SECONDS=GRACE,
            JANGAR_AGENT_ENV_ALLOW="CODEX_STANDIN_*",
            CODEX_STANDIN_MARK=marker,
        ),
        logs=tmp_path / "logs",
    )
    client = await Client.connect(op_temporal.address, data_converter=DATA_CONVERTER)
    workflow_id = None
    try:
        await asyncio.to_thread(process.wait_for, '"event": "worker started"')
        repo = await asyncio.to_thread(make_bare_repo, tmp_path)
        submitted = await asyncio.to_thread(
            jangar, "submit", "--repo", str(repo), "--prompt", "[standin:sleep=120]", "--json",
            env=env,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        workflow_id = json.loads(submitted.stdout)["workflowId"]

        def agent_pids() -> set[int]:  # the worker carries the marker too: not it
            return set(pids_with_env("CODEX_STANDIN_MARK", marker)) - {process.proc.pid}

        async def agent_started() -> bool:
            return bool(agent_pids())

        await wait_until(agent_started, within=60, what="the agent to start")

        signalled = time.monotonic()
        process.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.proc.wait, GRACE + 15)
        took = time.monotonic() - signalled
        assert code == 0, process.stderr()[-3000:]
        assert took < GRACE  # handed over at once, not after the grace period
        assert agent_pids() == set()  # the agent is gone
        events = [r["event"] for r in process.json_lines()]
        assert events.index("worker stopping") < events.index("worker stopped")
        # The agent step waits, retryable, for another worker: handed over, not lost.
        described = await client.get_workflow_handle(workflow_id).describe()
        [pending] = [
            p
            for p in described.raw_description.pending_activities
            if p.activity_type.name == "run_agent"
        ]
        assert pending.attempt == 2
        assert pending.last_failure.application_failure_info.type == "WorkerShutdown"
    finally:
        process.stop()
        if workflow_id is not None:
            from temporalio.service import RPCError

            try:
                await client.get_workflow_handle(workflow_id).terminate("test over")
            except RPCError as exc:
                assert "already completed" in exc.message


def test_sigterm_when_idle_exits_0_promptly(
    op_temporal: ManagedProcess, op_convex: RunningBackend, tmp_path: Path
) -> None:
    env = operator_env(op_temporal.address, op_convex, queue="idle", data_dir=tmp_path / "data")
    process = start_jangar("worker", env=env | worker_env(), logs=tmp_path / "logs")
    try:
        process.wait_for('"event": "worker started"')
        signalled = time.monotonic()
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=15) == 0, process.stderr()[-3000:]
        assert time.monotonic() - signalled < 10
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"MAX_CONCURRENT_ACTIVITIES": "0"}, "MAX_CONCURRENT_ACTIVITIES"),
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "{cert}"}, "TEMPORAL_TLS_CLIENT_KEY_PATH"),
        ({"TEMPORAL_TLS_CLIENT_KEY_PATH": "{cert}"}, "TEMPORAL_TLS_CLIENT_CERT_PATH"),
        ({"HEALTH_PORT": "eighty"}, "HEALTH_PORT"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"JANGAR_CODEX_COMMAND": "  "}, "JANGAR_CODEX_COMMAND"),
        ({"METRICS_PORT": "{busy}"}, "METRICS_PORT"),
        ({"HEALTH_PORT": "{busy}"}, "HEALTH_PORT"),
        ({"TEMPORAL_NAMESPACE": "no-such-namespace"}, "TEMPORAL_NAMESPACE"),
    ],
    ids=[
        "zero-activities",
        "cert-without-key",
        "key-without-cert",
        "port-not-a-number",
        "log-format",
        "empty-agent-command",
        "metrics-port-busy",
        "health-port-busy",
        "unknown-namespace",
    ],
)
def test_bad_setting_stops_the_start_naming_it_with_exit_2(
    op_temporal: ManagedProcess,
    op_convex: RunningBackend,
    tmp_path: Path,
    settings: dict[str, str],
    named: str,
) -> None:
    import socket

    cert = tmp_path / "client.pem"
    cert.write_text("not really a certificate")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {k: v.format(cert=cert, busy=busy.getsockname()[1]) for k, v in settings.items()}
        env = clean_env(
            TEMPORAL_ADDRESS=op_temporal.address,
            TEMPORAL_TASK_QUEUE=unique_queue("bad"),
            CONVEX_URL=op_convex.url,
            HEALTH_HOST="127.0.0.1",
            HEALTH_PORT=free_port(),
            METRICS_PORT=0,
            DISPATCHER_ENABLED="false",
            JANGAR_DATA_DIR=tmp_path / "data",
        )
        done = jangar("worker", env=env | values, timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("jangar: ") and named in last, done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_unreachable_temporal_stops_the_start_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = jangar(
        "worker",
        env=clean_env(
            TEMPORAL_ADDRESS=address,
            HEALTH_HOST="127.0.0.1",
            HEALTH_PORT=free_port(),
            METRICS_PORT=0,
            JANGAR_DATA_DIR=tmp_path / "data",
        ),
        timeout=60,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "TEMPORAL_ADDRESS" in last and address in last
    assert "Traceback" not in done.stderr


# Last: it stops this module's Convex backend.
def test_readyz_503_names_convex_when_the_backend_stops(worker: RunningWorker) -> None:
    assert httpx.get(f"{worker.health}/readyz").status_code == 200
    worker.backend.stop()
    response = httpx.get(f"{worker.health}/readyz", timeout=15)
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["temporal"] == "ok"
    assert body["checks"]["convex"] != "ok"
    assert "Convex" in body["checks"]["convex"]
    assert httpx.get(f"{worker.health}/livez").status_code == 200  # alive, just not ready
