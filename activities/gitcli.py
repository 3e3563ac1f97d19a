"""Running the git CLI for the job activities: environment, credentials, error classification.

Every git command runs through :func:`activities.process.run_process` (own process group,
time limit, cancellation) with an allow-listed environment plus:

- ``GIT_TERMINAL_PROMPT=0`` and ssh ``BatchMode=yes``: a missing credential fails at once
  instead of waiting for a password nobody will type;
- hardened against the workspace (:mod:`activities.gitsafe`): the agent can write anything
  in the workspace's ``.git``, so before each command the repository-local config is reduced
  to the keys the worker itself writes, and ``-c`` overrides plus the environment disable
  hooks, fsmonitor, global/system config, submodule recursion and auto gc.
  No hook, fsmonitor, filter or diff driver, include or uploadpack planted in the workspace
  runs; a ``.git`` tampered with beyond repair is a non-retryable ``UnsafeWorkspace``;
- ``GIT_ALLOW_PROTOCOL``: https and ssh only, plus ``file`` (local paths, ``file://``) when
  ``JobConfig.allow_local_repos`` is on; a local remote without it is refused before git runs
  (non-retryable ``RepositoryNotAllowed``), as is any transport git refuses;
- for an https remote on the GitHub host of ``JobConfig.github_api_url``, when
  ``GITHUB_TOKEN`` is set, an ``Authorization`` header passed through ``GIT_CONFIG_*``
  variables: never on the command line, never in ``.git/config``, never in a URL, never over
  plain http and never to another host (``host:port`` as the remote names it);
- ``GIT_SSL_CAINFO`` when the operator gave a CA bundle (``JobConfig.git_ca_file``,
  ``JANGAR_GIT_CA_FILE``): a git server behind a private CA.

Failures become ``ApplicationError``s whose ``type`` says what went wrong and whether a retry
can help; their messages are scrubbed of credentials (:func:`activities.repo_url.redact_text`).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.gitsafe import (
    UnsafeRepository,
    hardening_args,
    hardening_env,
    sanitize_repository,
)
from activities.process import child_env, run_process
from activities.repo_url import github_web_host, is_local_repo, redact_text, repo_host

# Error types (ApplicationError.type) raised for git failures.
REPOSITORY_NOT_FOUND = "RepositoryNotFound"  # non-retryable
REPOSITORY_ACCESS_DENIED = "RepositoryAccessDenied"  # non-retryable
GIT_NETWORK_ERROR = "GitNetworkError"  # retryable
GIT_TIMEOUT = "GitTimeout"  # retryable
GIT_COMMAND_FAILED = "GitCommandFailed"  # retryable (unknown cause; the retry policy bounds it)
GIT_NOT_INSTALLED = "GitNotInstalled"  # non-retryable
INVALID_BRANCH = "InvalidBranch"  # non-retryable: a branch name git refuses
UNSAFE_WORKSPACE = "UnsafeWorkspace"  # non-retryable: its .git was tampered with
REPOSITORY_NOT_ALLOWED = "RepositoryNotAllowed"  # non-retryable: a transport this worker refuses

_NETWORK_HINTS = (
    "could not resolve host",
    "could not resolve hostname",
    "connection timed out",
    "connection refused",
    "failed to connect",
    "couldn't connect to server",
    "could not connect",
    "connection reset",
    "operation timed out",
    "network is unreachable",
    "temporary failure in name resolution",
    "the remote end hung up unexpectedly",
    "early eof",
    "rpc failed",
    "gnutls",
    "ssl_read",
    "returned error: 5",
    "returned error: 429",
)
_AUTH_HINTS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied",
    "returned error: 401",
    "returned error: 403",
    "access denied",
    "invalid username or password",
    "host key verification failed",
)
_NOT_FOUND_HINTS = (
    "repository not found",
    "does not appear to be a git repository",
    "not a git repository",
    "returned error: 404",
    "no such file or directory",
    "not found",
)


@dataclass(frozen=True)
class GitOutput:
    exit_code: int
    stdout: str
    stderr: str


def git_env(config: JobConfig, remote: str | None = None) -> dict[str, str]:
    """The environment git runs with (see the module docstring)."""
    extra = {
        **hardening_env(allow_local=config.allow_local_repos),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        "LC_ALL": "C",  # git's messages in English: the classification reads them
    }
    for name in ("SSH_AUTH_SOCK", "GIT_SSH", "SSH_KNOWN_HOSTS"):
        if name in os.environ:
            extra[name] = os.environ[name]
    if config.git_ca_file is not None:
        # git's global and system config are off (gitsafe), so http.sslCAInfo cannot come
        # from there: the operator's bundle reaches git (and only git) this way.
        extra["GIT_SSL_CAINFO"] = str(config.git_ca_file)
    token = config.github_token.get_secret_value() if config.github_token else None
    if token and remote and remote.lower().startswith("https://"):
        host = repo_host(remote)
        web_host = github_web_host(config.github_api_url)
        if host and host == web_host:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            extra.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": f"http.{_https_origin(remote)}/.extraheader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
    return child_env(extra=extra)


def _https_origin(remote: str) -> str:
    """``https://host[:port]`` of an https remote, as git matches ``http.<url>.*`` keys: the
    port must match exactly (an omitted one is 443), so a GitHub Enterprise on another port
    needs it in the key or git never sends the header."""
    parts = urlsplit(remote)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"https://{host}:{parts.port}" if parts.port else f"https://{host}"


def classify_git_failure(
    what: str, stderr: str, remote: str | None, *, exit_code: int | None
) -> ApplicationError:
    """An ApplicationError for a failed remote git command, typed by what git said."""
    text = redact_text(stderr.strip(), remote)[-1500:] or f"exit code {exit_code}"
    lowered = stderr.lower()
    if "transport '" in lowered and "' not allowed" in lowered:
        return ApplicationError(
            f"{what}: this worker does not use that transport (git runs over https and ssh;"
            f" local repositories only with JANGAR_ALLOW_LOCAL_REPOS=true): {text}",
            type=REPOSITORY_NOT_ALLOWED,
            non_retryable=True,
        )
    if any(hint in lowered for hint in _NETWORK_HINTS):
        return ApplicationError(
            f"{what}: the remote could not be reached (will retry): {text}",
            type=GIT_NETWORK_ERROR,
        )
    if any(hint in lowered for hint in _AUTH_HINTS):
        return ApplicationError(
            f"{what}: access denied. Check the worker's credentials for this repository"
            f" (GITHUB_TOKEN for GitHub over https, an ssh key for ssh): {text}",
            type=REPOSITORY_ACCESS_DENIED,
            non_retryable=True,
        )
    if any(hint in lowered for hint in _NOT_FOUND_HINTS):
        return ApplicationError(
            f"{what}: repository not found. Check the work order's repo: {text}",
            type=REPOSITORY_NOT_FOUND,
            non_retryable=True,
        )
    return ApplicationError(f"{what} failed: {text}", type=GIT_COMMAND_FAILED)


async def run_git(
    args: Sequence[str],
    *,
    cwd: Path,
    config: JobConfig,
    remote: str | None = None,
    time_limit: float | None = None,
    heartbeat: Callable[[], None] | None = None,
    check: bool = True,
    what: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> GitOutput:
    """Run ``git <args>`` in ``cwd``; with ``check``, a non-zero exit raises a typed error.

    ``remote`` is the repository URL the command talks to (for credentials and redaction).
    """
    allow_local = config.allow_local_repos
    argv = ["git", *hardening_args(allow_local), *args]
    label = what or f"git {args[0]}"
    limit = time_limit if time_limit is not None else config.git_timeout_seconds
    if remote is not None and not allow_local and is_local_repo(remote):
        raise ApplicationError(
            f"{label}: repository {redact_text(remote)} is on this worker's disk (a local path"
            " or file:// URL), and this worker does not clone local repositories; its operator"
            " allows them with JANGAR_ALLOW_LOCAL_REPOS=true (development and tests only)",
            type=REPOSITORY_NOT_ALLOWED,
            non_retryable=True,
        )
    try:
        await sanitize_repository(cwd, time_limit=limit)
        result = await run_process(
            argv,
            cwd=cwd,
            env={
                **git_env(config, remote),
                **hardening_env(cwd, allow_local=allow_local),
                **(extra_env or {}),
            },
            time_limit=limit,
            heartbeat=heartbeat,
            heartbeat_interval=config.heartbeat_interval_seconds,
            kill_grace=min(config.kill_grace_seconds, 5.0),
            capture=True,
        )
    except UnsafeRepository as exc:
        raise ApplicationError(
            f"{label}: {exc}", type=UNSAFE_WORKSPACE, non_retryable=True
        ) from exc
    except FileNotFoundError as exc:
        raise ApplicationError(
            "git is not installed on this worker (or not on PATH); install git",
            type=GIT_NOT_INSTALLED,
            non_retryable=True,
        ) from exc
    if result.timed_out:
        raise ApplicationError(
            f"{label} did not finish within {limit:g} s (JANGAR_GIT_TIMEOUT_SECONDS); will retry",
            type=GIT_TIMEOUT,
        )
    assert result.exit_code is not None
    output = GitOutput(result.exit_code, result.stdout, result.stderr)
    if check and result.exit_code != 0:
        if remote is not None:
            raise classify_git_failure(label, result.stderr, remote, exit_code=result.exit_code)
        detail = redact_text(result.stderr.strip())[-1500:] or f"exit code {result.exit_code}"
        raise ApplicationError(f"{label} failed: {detail}", type=GIT_COMMAND_FAILED)
    return output
