"""The workflows a worker registers (the replayer uses the same list)."""

from __future__ import annotations

from workflows.codex_job import CodexJobWorkflow


def workflows() -> list[type]:
    return [CodexJobWorkflow]
