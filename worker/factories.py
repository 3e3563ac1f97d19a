"""Everything built from ``Settings``: the Convex client, the job activities' config, the
activity sets a worker registers.

The one place where settings (the environment) turn into the constructor arguments of the
lower layers, so ``activities/`` never reads settings itself.
"""

from __future__ import annotations

from activities.config import JobConfig
from activities.convex_client import ConvexClient
from activities.jobs import JobActivities
from activities.persistence import PersistenceActivities
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


def job_config(settings: Settings) -> JobConfig:
    """The job activities' configuration, from the settings of the worker that runs them."""
    return JobConfig(
        data_dir=settings.data_dir,
        artifact_base_url=settings.artifact_base_url,
        codex_command=tuple(settings.codex_command),
        agent_env_allow=tuple(settings.agent_env_allow),
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
        worker_task_queue=settings.worker_task_queue,
        allow_local_repos=settings.allow_local_repos,
    )


def job_activities(settings: Settings) -> JobActivities:
    """The real job activities, configured from ``settings``."""
    return JobActivities(job_config(settings))


def persistence_activities(convex: ConvexClient, settings: Settings) -> PersistenceActivities:
    """The real persistence activities, writing through ``convex`` as this worker."""
    return PersistenceActivities(convex, worker_id=settings.worker_id)
