"""Section 1: the Convex client against the local backend, and against ConvexHttpClient."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import Any

from activities.convex_client import ConvexClient
from tools.bench.measure import Timing, concurrent, pct, print_timing, row, section, sequential
from tools.bench.stack import FAKE_REPO, Sizes
from worker.cli.submit import SubmitRequest, create_work_order
from worker.local.local_convex import DEV_ADMIN_KEY


async def bench_convex_client(convex: ConvexClient, backend_url: str, sizes: Sizes) -> None:
    section(
        "1. Convex client against the local backend (sequential unless 'in flight')",
        "ours: one pooled httpx.AsyncClient (activities/convex_client.py); legacy: the `convex` "
        "package's ConvexHttpClient (requests, new connection per call)",
        "on loopback a new connection costs well under 1 ms; over TLS to Convex cloud it "
        "costs round trips, which this cannot show",
    )
    submitted = await create_work_order(
        convex, SubmitRequest(repo=FAKE_REPO, prompt="bench: client calls", user="bench")
    )
    order_id = submitted.work_order_id
    run_id = await convex.mutation(
        "runs:start",
        {
            "workflowRequestId": order_id,
            "temporalWorkflowId": f"bench-{uuid.uuid4().hex[:8]}",
            "temporalRunId": uuid.uuid4().hex,
            "taskQueue": "bench",
            "workerId": "bench",
            "repo": FAKE_REPO,
            "branch": "codex/bench",
            "startedAt": int(time.time() * 1000),
        },
    )
    query_args: dict[str, Any] = {"workflowRequestId": order_id}

    def query(_: int) -> Awaitable[Any]:
        return convex.query("workOrders:getAsOperator", query_args)

    def append(key: str) -> Awaitable[Any]:
        return convex.mutation(
            "events:append",
            {
                "runId": run_id,
                "workflowRequestId": order_id,
                "type": "system",
                "data": {"message": "bench"},
                "idempotencyKey": key,
            },
        )

    # The convex package's HTTP client blocks; nothing else runs on this loop meanwhile.
    from convex.http_client import ConvexHttpClient

    legacy = ConvexHttpClient(backend_url)
    legacy.set_admin_auth(DEV_ADMIN_KEY)  # an internal query, as ours calls it

    def legacy_block(n: int) -> Timing:
        latencies: list[float] = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            legacy.query("workOrders:getAsOperator", query_args)
            latencies.append(time.perf_counter() - t0)
        return Timing(time.perf_counter() - start, latencies)

    # Warm-up: Node's JIT and the connection pool settle in the first few hundred calls.
    warm = max(50, sizes.calls // 4)
    await sequential(warm, query)
    legacy_block(warm // 2)
    await sequential(warm, lambda i: append(f"bench/warm/{i}"))

    # Ours and legacy in alternating blocks, so drift in the backend hits both alike.
    rounds = 4
    ours_q, legacy_q = Timing(0.0, []), Timing(0.0, [])
    for _ in range(rounds):
        block = await sequential(sizes.calls // rounds, query)
        ours_q = Timing(ours_q.wall + block.wall, ours_q.latencies + block.latencies)
        block = legacy_block(sizes.legacy_calls // rounds)
        legacy_q = Timing(legacy_q.wall + block.wall, legacy_q.latencies + block.latencies)
    print_timing("query workOrders:getAsOperator, ours", ours_q)
    print_timing("query workOrders:getAsOperator, legacy ConvexHttpClient", legacy_q)
    row("ratio: ours / legacy throughput", ours_q.rate / legacy_q.rate, "x")
    row(
        "ratio: legacy / ours p50 latency",
        pct(legacy_q.latencies, 50) / pct(ours_q.latencies, 50),
        "x",
    )
    print_timing(
        f"query workOrders:getAsOperator, ours, {sizes.inflight} in flight",
        await concurrent(sizes.calls, sizes.inflight, query),
    )
    fixed = await sequential(sizes.calls, lambda _: append("bench/fixed-key"))
    print_timing("mutation events:append, same key (dedup)", fixed)
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    fresh = await sequential(sizes.calls, lambda i: append(f"{prefix}/{i}"))
    print_timing("mutation events:append, new key (insert)", fresh)
