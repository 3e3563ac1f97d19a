"""Replay workflow histories against the current code to catch non-deterministic changes.

The same replayer serves ``jangar replay`` (histories fetched from the server) and the test
suite (histories kept under tests/workflows/histories/), so what CI checks is what operators run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker.runtime.registry import workflows
from worker.runtime.temporal_client import DATA_CONVERTER
from worker.settings import Settings


def replayer() -> Replayer:
    return Replayer(workflows=workflows(), data_converter=DATA_CONVERTER)


async def replay_histories(histories: Iterable[WorkflowHistory]) -> dict[str, str | None]:
    """Replay each history; maps workflow id to None (ok) or the failure's text."""
    results: dict[str, str | None] = {}
    engine = replayer()
    for history in histories:
        outcome = await engine.replay_workflow(history, raise_on_replay_failure=False)
        failure = outcome.replay_failure
        results[history.workflow_id] = (
            None if failure is None else f"{type(failure).__name__}: {failure}"
        )
    return results


async def replay_recent(
    settings: Settings, limit: int, workflow_ids: list[str], *, as_json: bool = False
) -> int:
    """Fetch the newest CodexJobWorkflow histories (or the named ones) and replay them."""
    from worker.runtime.temporal_client import connect_temporal

    client = await connect_temporal(settings)
    ids = list(workflow_ids)
    if not ids:
        async for execution in client.list_workflows(
            'WorkflowType = "CodexJobWorkflow"', limit=limit
        ):
            ids.append(execution.id)
    histories = [await client.get_workflow_handle(wid).fetch_history() for wid in ids]
    results = await replay_histories(histories)
    if as_json:
        print(
            json.dumps(
                {"replayed": len(results), "failures": {k: v for k, v in results.items() if v}},
                indent=2,
            )
        )
    else:
        for wid, failure in results.items():
            print(
                f"{'FAIL' if failure else 'ok  '}  {wid}"
                + (f"\n      {failure}" if failure else "")
            )
        print(f"{len(results)} replayed, {sum(1 for v in results.values() if v)} failed")
    return 1 if any(results.values()) else 0
