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
    codex_command: tuple[str, ...] = ("codex", "exec", "--json", "--sandbox", "workspace-write")
    """The agent's command line; the prompt is appended as its last argument."""
    agent_env_allow: tuple[str, ...] = ("CODEX_API_KEY", "OPENAI_API_KEY")
    """Extra environment names or globs the agent may inherit (see activities.process)."""
    codex_home: Path | None = None
    """The operator's Codex home: its auth.json and config.toml are copied to each agent step."""
    log_limit_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Cap of one agent or check log: the head and the tail are kept, with a marker between."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Default token budget of a run's agent; a repository entry may set its own."""
    max_agent_seconds: float | None = Field(default=None, gt=0)
    """Default agent time budget of a run; a repository entry may set its own."""
    heartbeat_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    """A workspace step whose worker stops heartbeating this long is retried elsewhere."""
    """How long a finished job's workspace and local files stay on the worker's disk."""
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
    worker_id: str = "jangar-worker"
    """This worker's identity, as recorded on runs and in heartbeats."""
    default_checks: tuple[str, ...] = ()
    """Checks for an order whose repository entry and order name none."""
    allow_local_repos: bool = False
    """Whether jobs may clone local paths and ``file://`` URLs (git's ``file`` transport). Off
    in production: a repository on the worker's own disk (another job's workspace, the
    worker's data) is nothing a chat user should reach. ``jangar dev``, ``make run`` and the
    tests turn it on (``JANGAR_ALLOW_LOCAL_REPOS``)."""
    git_ca_file: Path | None = None
    """A PEM bundle the worker's own git (``GIT_SSL_CAINFO``) and its GitHub API client trust
    instead of the system roots: a GitHub Enterprise or git server behind a private CA. The
    agent and the checks never see it."""
    webhook_secret: SecretStr | None = None
    """Key of the HMAC-SHA256 signature on run notifications (X-Jangar-Signature)."""
    repo_cache_max_bytes: int = Field(default=20 * 1024**3, gt=0)
    """Bound of the repository cache (one bare mirror per repository); least recently used
    mirrors no workspace borrows from are evicted beyond it."""

    @property
    def workspaces_root(self) -> Path:
        """The directory holding one workspace per work order."""
        return self.data_dir.expanduser().resolve() / "workspaces"

    @property
    def repo_cache_root(self) -> Path:
        """The repository cache: one bare mirror per repository (activities/repo_cache.py)."""
        return self.data_dir.expanduser().resolve() / "repos"
