"""Everything built from ``Settings``: the Convex client, the job activities' config and
sandbox, the activity sets a worker registers.

The one place where settings (the environment) turn into the constructor arguments of the
lower layers, so ``activities/`` never reads settings itself.
"""

from __future__ import annotations

from pathlib import Path

from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.persistence import PersistenceActivities
from activities.sandbox import SandboxConfig
from worker.settings import Settings


def convex_client(settings: Settings) -> ConvexClient:
    """The process's Convex client: resolved URL, deploy or admin key, timeouts."""
    key = settings.convex_key
    return ConvexClient(
        settings.resolved_convex_url,
        key.get_secret_value() if key is not None else None,
        timeout=settings.convex_timeout_seconds,
        connect_timeout=settings.convex_connect_timeout_seconds,
    )


def codex_home(settings: Settings) -> Path | None:
    """The operator's Codex home: CODEX_HOME, else ~/.codex when it exists."""
    if settings.codex_home is not None:
        return settings.codex_home
    default = Path.home() / ".codex"
    return default if default.is_dir() else None


def job_config(settings: Settings) -> JobConfig:
    """The job activities' configuration, from the settings of the worker that runs them."""
    return JobConfig(
        data_dir=settings.data_dir,
        codex_command=tuple(settings.codex_command),
        agent_env_allow=tuple(settings.agent_env_allow),
        codex_home=codex_home(settings),
        log_limit_bytes=settings.log_limit_bytes,
        max_tokens=settings.max_tokens,
        max_agent_seconds=(
            settings.max_agent_minutes * 60 if settings.max_agent_minutes is not None else None
        ),
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        agent_timeout_seconds=settings.agent_timeout_seconds,
        check_timeout_seconds=settings.check_timeout_seconds,
        git_timeout_seconds=settings.git_timeout_seconds,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        kill_grace_seconds=settings.kill_grace_seconds,
        git_author_name=settings.git_author_name,
        git_author_email=settings.git_author_email,
        github_token=settings.github_token,
        github_api_url=settings.github_api_url,
        github_timeout_seconds=settings.github_timeout_seconds,
        worker_id=settings.worker_id,
        default_checks=tuple(settings.check_commands),
        allow_local_repos=settings.allow_local_repos,
        git_ca_file=settings.git_ca_file,
        webhook_secret=settings.webhook_secret,
        repo_cache_max_bytes=int(settings.repo_cache_gb * 1024**3),
    )


def sandbox_config(settings: Settings) -> SandboxConfig:
    """How the agent and the checks are isolated: bubblewrap unless JANGAR_SANDBOX=off. The
    data directory (every job's workspace and files) is hidden from every sandboxed step."""
    return SandboxConfig(
        mode=settings.sandbox,
        extra_read_only=tuple(settings.sandbox_read_only),
        hidden=(settings.data_dir.expanduser().resolve(),),
    )


def job_activities(settings: Settings, convex: ConvexClient) -> JobActivities:
    """The real job activities, configured from ``settings``."""
    return JobActivities(job_config(settings), convex=convex, sandbox=sandbox_config(settings))


def persistence_activities(convex: ConvexClient, settings: Settings) -> PersistenceActivities:
    """The real persistence activities, writing through ``convex`` as this worker."""
    return PersistenceActivities(convex, worker_id=settings.worker_id)
