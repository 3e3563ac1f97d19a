"""Replay the recorded histories (tests/histories/) against the current workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.workflows.replay_variants import ReorderedCodexJobWorkflow
from worker.cli.replay import replay_histories
from worker.runtime.temporal_client import DATA_CONVERTER

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


def test_the_corpus_covers_every_outcome() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "success_with_flaky_convex",
        "agent_failure",
        "failing_check",
        "nothing_to_commit",
        "canceled_during_agent",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_against_the_current_workflow(path: Path) -> None:
    results = await replay_histories([load(path)])
    assert results == {f"replay-{path.stem}": None}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_reordered_workflow_fails_replay(path: Path) -> None:
    replayer = Replayer(workflows=[ReorderedCodexJobWorkflow], data_converter=DATA_CONVERTER)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(path))
