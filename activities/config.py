"""What the job activities are configured with, handed to them by whoever builds them.

Activities never read the environment or import the worker's settings: the worker process
builds one ``JobConfig`` from its settings (``worker.factories.job_config``) and passes it to
``JobActivities``. Tests and the benchmark build one directly. Keeping the configuration a
plain frozen model makes the dependency visible in every constructor and keeps the layers
pointing one way (worker -> activities, never back).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class JobConfig(BaseModel):
    """The job activities' configuration: where files go, what to run, how long to wait."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    data_dir: Path
    """Workspaces, logs and diffs live under this directory (made absolute when used)."""
    artifact_base_url: str | None = None
    """Public URL prefix of ``<data_dir>/artifacts``; ``file://`` URLs when None."""
    codex_command: tuple[str, ...] = ("codex", "exec", "--json", "--sandbox", "workspace-write")
    """The agent's command line; the prompt is appended as its last argument."""
    agent_env_allow: tuple[str, ...] = ("CODEX_API_KEY", "OPENAI_API_KEY")
    """Extra environment names or globs the agent may inherit (see activities.process)."""
    agent_timeout_seconds: float = Field(default=3600.0, gt=0)
    """The agent's time limit when the job gives none."""
    check_timeout_seconds: float = Field(default=1800.0, gt=0)
    """One check's time limit when the job gives none."""
    git_timeout_seconds: float = Field(default=600.0, gt=0)
    """Time limit of one git command."""
    heartbeat_interval_seconds: float = Field(default=2.0, gt=0)
    """How often long activities heartbeat."""
    kill_grace_seconds: float = Field(default=10.0, ge=0)
    """Between SIGTERM and SIGKILL when a job's processes are stopped."""
    git_author_name: str = "Jangar"
    """Author and committer name of the job's commit."""
    git_author_email: str = "jangar@localhost"
    """Author and committer email of the job's commit."""
    github_token: SecretStr | None = None
    """Token for git over https on the GitHub host and for the pull request API."""
    github_api_url: str = "https://api.github.com"
    """GitHub REST API base; also decides which repositories count as GitHub."""
    github_timeout_seconds: float = Field(default=30.0, gt=0)
    """Timeout of one GitHub API request."""
    worker_task_queue: str | None = None
    """This worker's own task queue: where the workspace it prepared can be reached."""
    allow_local_repos: bool = False
    """Whether jobs may clone local paths and ``file://`` URLs (git's ``file`` transport). Off
    in production: a repository on the worker's own disk (another job's workspace, the
    worker's data) is nothing a chat user should reach. ``jangar dev``, ``make run`` and the
    tests turn it on (``JANGAR_ALLOW_LOCAL_REPOS``)."""

    @property
    def workspaces_root(self) -> Path:
        """The directory holding one workspace per work order."""
        return self.data_dir.expanduser().resolve() / "workspaces"

    @property
    def artifacts_root(self) -> Path:
        """The directory holding each run's logs and diffs."""
        return self.data_dir.expanduser().resolve() / "artifacts"
