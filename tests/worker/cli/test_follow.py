"""`jangar submit --wait` (``follow``) rides out Convex being unreachable.

The follower reads Convex through a proxy that refuses every connection for a while; the run
starts and ends meanwhile (written directly to the backend). The follower must keep waiting,
say that Convex is away and back, and report the run's final status.
"""

from __future__ import annotations

import asyncio
import io
import time

from activities.convex_client import ConvexClient
from tests.worker.conftest import wait_until
from tools.convex_proxy import FlakyProxy
from worker.cli.submit import follow, submit_as_operator
from worker.local.local_convex import RunningBackend


async def test_follow_waits_out_a_convex_outage_and_reports_the_final_status(
    convex_backend: RunningBackend, convex_client: ConvexClient
) -> None:
    repo = "https://github.example/acme/app.git"
    submitted = await submit_as_operator(convex_client, repo=repo, prompt="x", user="follower")
    proxy = FlakyProxy("127.0.0.1", convex_backend.port)
    await proxy.start()
    out = io.StringIO()
    try:
        async with ConvexClient(proxy.url, convex_backend.admin_key) as through:
            proxy.down = True
            following = asyncio.create_task(follow(through, submitted, out=out, poll=0.05))
            await wait_until(
                lambda: _said(out, "Convex is unreachable"), within=10, what="the outage notice"
            )
            # Meanwhile the job runs and ends.
            run_id = await convex_client.mutation(
                "runs:start",
                {
                    "workflowRequestId": submitted.work_order_id,
                    "temporalWorkflowId": f"work-order-{submitted.work_order_id}",
                    "temporalRunId": "run-1",
                    "taskQueue": "jangar",
                    "workerId": "w",
                    "repo": repo,
                    "branch": f"codex/{submitted.work_order_id}",
                    "startedAt": int(time.time() * 1000),
                },
            )
            await convex_client.mutation(
                "runs:updateStatus", {"runId": run_id, "status": "succeeded"}
            )
            refused = proxy.refused

            async def kept_trying() -> bool:  # polls on through the outage after the run ended
                return proxy.refused >= refused + 2

            await wait_until(kept_trying, within=10, what="the follower to keep polling")
            assert not following.done()  # still waiting, not given up
            proxy.down = False
            async with asyncio.timeout(30):
                result = await following
    finally:
        await proxy.stop()
    assert proxy.refused > 0
    assert result.status == "succeeded" and result.run_id == run_id
    text = out.getvalue()
    assert "Convex answers again" in text
    assert text.index("Convex is unreachable") < text.index("run succeeded")


async def _said(out: io.StringIO, words: str) -> bool:
    return words in out.getvalue()
