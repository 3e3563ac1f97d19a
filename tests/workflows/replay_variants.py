"""A deliberately changed CodexJobWorkflow, to prove the replay test catches such a change.

It registers under the same workflow name and records an extra event before preparing the
workspace: one more command, in a different order, than the recorded histories hold.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import JobSpec
    from workflows.codex_job import CodexJobWorkflow
    from workflows.models import CodexJobInput, CodexJobResult


@workflow.defn(name="CodexJobWorkflow")
class ReorderedCodexJobWorkflow(CodexJobWorkflow):
    @workflow.run
    async def run(self, job: CodexJobInput) -> CodexJobResult:
        return await super().run(job)

    async def _job(self, job: JobSpec, result: CodexJobResult) -> CodexJobResult:
        self._event("comment", {"message": "an extra record before the workspace"})
        return await super()._job(job, result)
