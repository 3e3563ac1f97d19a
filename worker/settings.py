"""The one settings object of the Jangar worker, read from the environment.

Every process (worker, dispatcher, CLI, dev stack) builds its configuration here, so a
variable has one name, one default and one validation rule. A bad value stops the start with
a message that names the variable (see ``load_settings``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from activities.sandbox import SandboxMode, parse_mode

DEFAULT_CONVEX_URL = "http://127.0.0.1:3210"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Configuration shared by every Jangar process. Field names map to upper-case env vars."""

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        # Only the documented names are read from the environment: with populate_by_name a
        # field would also answer to its bare name (GIT_AUTHOR_NAME, DATA_DIR...), which other
        # tools set for their own purposes. Code passes field names through load_settings().
        populate_by_name=False,
    )

    # --- Convex (names from the seed) -------------------------------------------------------
    convex_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CONVEX_URL"),
        description="Convex deployment URL (cloud). Falls back to CONVEX_DEPLOYMENT, then "
        "CONVEX_SELF_HOSTED_URL.",
    )
    convex_deployment: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CONVEX_DEPLOYMENT"),
        pattern=r"^([a-z]+:)?[a-z0-9-]+$",
        description="Convex cloud deployment name, as the Convex CLI writes it: dev:happy-otter-1",
    )
    convex_self_hosted_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CONVEX_SELF_HOSTED_URL")
    )
    convex_deploy_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CONVEX_DEPLOY_KEY")
    )
    convex_admin_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CONVEX_ADMIN_KEY")
    )
    convex_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Read/write timeout of one Convex call."
    )
    convex_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Time allowed to open a connection to Convex."
    )

    # --- Temporal ---------------------------------------------------------------------------
    # Connection (TLS, API key, profiles) is the SDK's own configuration, read by
    # worker.runtime.temporal_client through temporalio.envconfig; these two are here so a
    # process can point itself at a server (jangar dev). Unset: the SDK's value, else defaults.
    temporal_address: str | None = None
    temporal_namespace: str | None = None
    temporal_task_queue: str = "jangar"

    # --- Worker process ---------------------------------------------------------------------
    worker_id: str = Field(default_factory=_default_worker_id)
    max_concurrent_activities: int = Field(default=20, ge=1, le=1000)
    max_concurrent_workflow_tasks: int = Field(default=50, ge=1, le=1000)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    dispatcher_enabled: bool = True
    dispatcher_poll_seconds: float = Field(default=2.0, gt=0, le=600)

    # --- Jobs -------------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".jangar"),
        validation_alias=AliasChoices("JANGAR_DATA_DIR"),
        description="Workspaces, logs and diffs live under this directory.",
    )
    codex_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["codex", "exec", "--json", "--sandbox", "workspace-write"],
        validation_alias=AliasChoices("JANGAR_CODEX_COMMAND"),
        description="Agent command line; the prompt is appended as the last argument.",
    )
    agent_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=24 * 3600,
        validation_alias=AliasChoices("JANGAR_AGENT_TIMEOUT_SECONDS"),
    )
    check_commands: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("JANGAR_CHECK_COMMANDS"),
        description="Default checks when a work order names none; separated by newlines.",
    )
    github_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_TOKEN", "GH_TOKEN")
    )
    github_api_url: str = Field(
        default="https://api.github.com", validation_alias=AliasChoices("GITHUB_API_URL")
    )
    git_author_name: str = Field(
        default="Jangar", validation_alias=AliasChoices("JANGAR_GIT_AUTHOR_NAME")
    )
    git_author_email: str = Field(
        default="jangar@localhost", validation_alias=AliasChoices("JANGAR_GIT_AUTHOR_EMAIL")
    )
    check_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        le=24 * 3600,
        validation_alias=AliasChoices("JANGAR_CHECK_TIMEOUT_SECONDS"),
        description="Time limit of one check command when the work order gives none.",
    )
    git_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        le=6 * 3600,
        validation_alias=AliasChoices("JANGAR_GIT_TIMEOUT_SECONDS"),
        description="Time limit of one git command (clone, fetch, push).",
    )
    repo_cache_gb: float = Field(
        default=20.0,
        gt=0,
        validation_alias=AliasChoices("JANGAR_REPO_CACHE_GB"),
        description="Bound of the repository cache (one bare mirror per repository), in GiB.",
    )
    agent_env_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["CODEX_API_KEY", "OPENAI_API_KEY"],
        validation_alias=AliasChoices("JANGAR_AGENT_ENV_ALLOW"),
        description=(
            "Extra environment variables (names or globs, comma or space separated) passed to"
            " the agent and the checks; by default only the agent's own API keys."
            " CONVEX_* and TEMPORAL_* never pass."
        ),
    )
    heartbeat_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        le=600,
        validation_alias=AliasChoices("JANGAR_HEARTBEAT_SECONDS"),
        description="How often long job activities heartbeat (keep well under heartbeat_timeout).",
    )
    kill_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=600,
        validation_alias=AliasChoices("JANGAR_KILL_GRACE_SECONDS"),
        description="Between SIGTERM and SIGKILL when a job process is stopped.",
    )
    github_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        validation_alias=AliasChoices("GITHUB_TIMEOUT_SECONDS"),
        description="Timeout of one GitHub API request.",
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        validation_alias=AliasChoices("JANGAR_HEARTBEAT_TIMEOUT_SECONDS"),
        description="A workspace step whose worker stops heartbeating this long (SIGKILL, a lost"
        " node) is retried on another worker from its checkpoint.",
    )
    codex_home: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CODEX_HOME"),
        description="The operator's Codex home; its auth.json and config.toml are copied into"
        " each agent step's private CODEX_HOME. Default ~/.codex when it exists.",
    )
    log_limit_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        validation_alias=AliasChoices("JANGAR_LOG_LIMIT_BYTES"),
        description="Cap of one agent or check log (the head and the tail are kept).",
    )
    max_tokens: int | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("JANGAR_MAX_TOKENS"),
        description="Default token budget of a run's agent; a repository entry may set its own.",
    )
    max_agent_minutes: float | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("JANGAR_MAX_AGENT_MINUTES"),
        description="Default agent time budget of a run; a repository entry may set its own.",
    )
    workspace_retention_hours: float = Field(
        default=24.0 * 7,
        gt=0,
        validation_alias=AliasChoices("JANGAR_WORKSPACE_RETENTION_HOURS"),
        description="Workspaces and local job files untouched this long are removed.",
    )
    storage_orphan_hours: float = Field(
        default=24.0,
        gt=0,
        validation_alias=AliasChoices("JANGAR_STORAGE_ORPHAN_HOURS"),
        description="Files in Convex storage that no record names are removed after this long.",
    )
    allow_local_repos: bool = Field(
        default=False,
        validation_alias=AliasChoices("JANGAR_ALLOW_LOCAL_REPOS"),
        description="Let jobs use local paths and file:// repositories (development, tests).",
    )
    git_ca_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("JANGAR_GIT_CA_FILE"),
        description="A PEM bundle the worker's git and GitHub API client trust instead of the"
        " system roots (a GitHub Enterprise or git server behind a private CA).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("JANGAR_WEBHOOK_SECRET"),
        description="Key of the HMAC-SHA256 signature on run-finished webhooks.",
    )
    sandbox: SandboxMode = Field(
        default="bwrap",
        validation_alias=AliasChoices("JANGAR_SANDBOX"),
        description="bwrap (default) or off: how the agent and the checks are isolated.",
    )
    sandbox_read_only: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("JANGAR_SANDBOX_READ_ONLY"),
        description="Extra paths the sandbox shows read-only (a toolchain prefix), ':'-separated.",
    )
    max_jobs_per_user: int = Field(
        default=4,
        ge=1,
        le=1000,
        validation_alias=AliasChoices("JANGAR_MAX_JOBS_PER_USER"),
        description="The dispatcher starts at most this many jobs of one user at once.",
    )
    max_jobs_per_repo: int = Field(
        default=4,
        ge=1,
        le=1000,
        validation_alias=AliasChoices("JANGAR_MAX_JOBS_PER_REPO"),
        description="The dispatcher starts at most this many jobs of one repository at once"
        " (a repository entry may set its own).",
    )

    @field_validator("codex_command", mode="before")
    @classmethod
    def _split_command(cls, value: object) -> object:
        if isinstance(value, str):
            import shlex

            parts = shlex.split(value)
            if not parts:
                raise ValueError("must name a program, e.g. 'codex exec --json'")
            return parts
        return value

    @field_validator("check_commands", mode="before")
    @classmethod
    def _split_checks(cls, value: object) -> object:
        if isinstance(value, str):
            return [line.strip() for line in value.splitlines() if line.strip()]
        return value

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox(cls, value: object) -> SandboxMode:
        return parse_mode(value if isinstance(value, str) else None)

    @field_validator("sandbox_read_only", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            paths = [p for p in value.split(":") if p.strip()]
            if any(not p.startswith("/") for p in paths):
                raise ValueError("must be absolute paths separated by ':'")
            return paths
        return value

    @field_validator("agent_env_allow", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name for name in value.replace(",", " ").split() if name]
        return value

    @field_validator("convex_url", "convex_self_hosted_url", "github_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator(
        "convex_deploy_key", "convex_admin_key", "github_token", "webhook_secret", mode="before"
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        """An empty secret (a Secret key left blank) means "not set", not an empty key."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("git_ca_file", mode="before")
    @classmethod
    def _ca_file(cls, value: object) -> object:
        """Checked at start: a missing bundle would otherwise fail every clone with a TLS
        error far from its cause. Blank means unset."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ValueError("must be the path of an existing PEM file (CA certificates)")
        try:
            head = path.read_bytes()[:1_000_000]
        except OSError as exc:
            raise ValueError(f"cannot be read: {exc.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in head:
            raise ValueError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        return path.resolve()

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @property
    def resolved_convex_url(self) -> str:
        """CONVEX_URL, else CONVEX_DEPLOYMENT, else CONVEX_SELF_HOSTED_URL, else the default."""
        if self.convex_url:
            return self.convex_url
        if self.convex_deployment:
            return f"https://{self.convex_deployment.split(':')[-1]}.convex.cloud"
        return self.convex_self_hosted_url or DEFAULT_CONVEX_URL

    @property
    def convex_key(self) -> SecretStr | None:
        """The deploy key wins over the admin key; both authorize internal functions."""
        return self.convex_deploy_key or self.convex_admin_key


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (its first alias, else its upper-case name)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


def _by_env_name(overrides: dict[str, Any]) -> dict[str, Any]:
    """Field-name overrides keyed by each field's environment name, as Settings expects."""
    unknown = [name for name in overrides if name not in Settings.model_fields]
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return {env_name(name): value for name, value in overrides.items()}


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (overrides by field name win), with errors turned
    into one clear message that names each variable."""
    try:
        return Settings(**_by_env_name(overrides))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            secret = any(w in field.lower() for w in ("key", "token", "secret", "password", "url"))
            shown = "<hidden>" if secret else repr(err.get("input"))
            problems.append(f"{env_name(field)}: {err['msg']} (got {shown})")
        raise SettingsError("invalid setting(s): " + "; ".join(problems)) from None
