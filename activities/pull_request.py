"""``open_pull_request``: find or create the pull request for the work branch on GitHub.

Which repositories count as GitHub: those on the host that ``JobConfig.github_api_url``
(``GITHUB_API_URL``) serves (:func:`activities.repo_url.github_web_host`): ``github.com`` for the
default ``https://api.github.com``, the server's own host for GitHub Enterprise
(``https://ghe.example/api/v3``), ``127.0.0.1`` for a stand-in API in tests. Any https, http,
ssh or scp-like URL on that host whose path is ``owner/name`` is parsed; anything else (a local
path, another host) is *skipped*, as is every repository when no ``GITHUB_TOKEN`` is set.
Skipping is a result (``skipped=True`` and a ``reason``), never an exception.

Never two pull requests: first ``GET /repos/{o}/{r}/pulls?head={o}:{branch}&state=open``; only
when none is open, ``POST /repos/{o}/{r}/pulls``; a 422 "already exists" (a concurrent attempt
won the race) lists again and returns that one. An open one (a follow-up continues its branch)
is updated with the title and body given (``PATCH``), which describe the whole change.

Errors (``ApplicationError.type``): GitHubUnauthorized (401), GitHubForbidden (403),
GitHubNotFound (404), GitHubValidationFailed (422, e.g. no commits between the branches),
GitHubRequestFailed (other 4xx): non-retryable. GitHubRateLimited (429, 403 rate limit) and
GitHubUnavailable (5xx, network, timeouts): retryable. Messages never contain the token.
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Any

import httpx
import structlog
from temporalio.exceptions import ApplicationError

from activities.config import JobConfig
from activities.models import OpenPullRequestInput, PullRequestResult
from activities.repo_url import github_web_host, parse_github_repo, redact_url

GITHUB_UNAUTHORIZED = "GitHubUnauthorized"
GITHUB_FORBIDDEN = "GitHubForbidden"
GITHUB_NOT_FOUND = "GitHubNotFound"
GITHUB_VALIDATION_FAILED = "GitHubValidationFailed"
GITHUB_REQUEST_FAILED = "GitHubRequestFailed"
GITHUB_RATE_LIMITED = "GitHubRateLimited"  # retryable
GITHUB_UNAVAILABLE = "GitHubUnavailable"  # retryable
NON_RETRYABLE_GITHUB_ERRORS = (
    GITHUB_UNAUTHORIZED,
    GITHUB_FORBIDDEN,
    GITHUB_NOT_FOUND,
    GITHUB_VALIDATION_FAILED,
    GITHUB_REQUEST_FAILED,
)

log = structlog.stdlib.get_logger(__name__)


def _message(response: httpx.Response) -> str:
    """GitHub's own explanation: ``message`` plus any ``errors[].message``, bounded."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(data, dict):
        return str(data)[:300]
    parts = [str(data.get("message", ""))]
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            parts.append(str(err.get("message") or err.get("code") or ""))
        else:
            parts.append(str(err))
    return "; ".join(p for p in parts if p)[:500]


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after")
    if value and value.isdigit():
        return timedelta(seconds=min(int(value), 3600))
    return None


def classify_response(response: httpx.Response, what: str, repository: str) -> ApplicationError:
    """The ApplicationError for a GitHub answer that is not the one we wanted."""
    status = response.status_code
    detail = _message(response)
    rate_limited = status == 429 or (
        status == 403
        and (response.headers.get("x-ratelimit-remaining") == "0" or "rate limit" in detail.lower())
    )
    if rate_limited:
        return ApplicationError(
            f"{what}: GitHub rate limit reached ({status}); will retry: {detail}",
            type=GITHUB_RATE_LIMITED,
            next_retry_delay=_retry_after(response),
        )
    if status >= 500:
        return ApplicationError(
            f"{what}: GitHub answered {status}; will retry: {detail}", type=GITHUB_UNAVAILABLE
        )
    if status == 401:
        return ApplicationError(
            f"{what}: GitHub rejected the token (401: {detail}); set GITHUB_TOKEN to a valid token",
            type=GITHUB_UNAUTHORIZED,
            non_retryable=True,
        )
    if status == 403:
        return ApplicationError(
            f"{what}: the token may not do this on {repository} (403: {detail}); it needs"
            " pull request write access (classic tokens: the repo scope)",
            type=GITHUB_FORBIDDEN,
            non_retryable=True,
        )
    if status == 404:
        return ApplicationError(
            f"{what}: repository {repository} not found, or the token cannot see it (404)",
            type=GITHUB_NOT_FOUND,
            non_retryable=True,
        )
    if status == 422:
        return ApplicationError(
            f"{what}: GitHub refused the request (422: {detail}); check that the branch was"
            " pushed and differs from the base branch",
            type=GITHUB_VALIDATION_FAILED,
            non_retryable=True,
        )
    return ApplicationError(
        f"{what}: unexpected GitHub answer {status}: {detail}",
        type=GITHUB_REQUEST_FAILED,
        non_retryable=True,
    )


def _skipped(reason: str) -> PullRequestResult:
    log.info("pull_request_skipped", reason=reason)
    return PullRequestResult(skipped=True, reason=reason)


def _result(
    pr: dict[str, Any], repository: str, created: bool, updated: bool = False
) -> PullRequestResult:
    return PullRequestResult(
        skipped=False,
        url=str(pr["html_url"]),
        number=int(pr["number"]),
        created=created,
        updated=updated,
        repository=repository,
    )


async def _update(
    client: httpx.AsyncClient,
    owner: str,
    name: str,
    pr: dict[str, Any],
    inp: OpenPullRequestInput,
) -> PullRequestResult:
    """An open pull request (a follow-up's) gets the title and body that describe the whole
    change; unchanged ones are left alone, so a retry makes no second edit."""
    repository = f"{owner}/{name}"
    if pr.get("title") == inp.title and (pr.get("body") or "") == inp.body:
        return _result(pr, repository, created=False)
    response = await client.patch(
        f"/repos/{owner}/{name}/pulls/{pr['number']}", json={"title": inp.title, "body": inp.body}
    )
    if response.status_code != 200:
        raise classify_response(response, "updating the pull request", repository)
    log.info("pull_request_updated", repository=repository, number=pr["number"])
    return _result(response.json(), repository, created=False, updated=True)


async def _find_open(
    client: httpx.AsyncClient, owner: str, name: str, branch: str
) -> dict[str, Any] | None:
    repository = f"{owner}/{name}"
    response = await client.get(
        f"/repos/{owner}/{name}/pulls",
        params={"head": f"{owner}:{branch}", "state": "open", "per_page": "10"},
    )
    if response.status_code != 200:
        raise classify_response(response, "listing pull requests", repository)
    pulls = response.json()
    for pr in pulls if isinstance(pulls, list) else []:
        head = pr.get("head") if isinstance(pr, dict) else None
        if isinstance(head, dict) and head.get("ref") == branch:
            return dict(pr)
    return None


def _trust(config: JobConfig) -> ssl.SSLContext | bool:
    """The operator's private CA (``JANGAR_GIT_CA_FILE``) for a GitHub Enterprise behind one,
    as the worker's git trusts it; otherwise the system's roots."""
    if config.git_ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(config.git_ca_file))


async def open_pull_request(
    inp: OpenPullRequestInput,
    config: JobConfig,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PullRequestResult:
    """Find or create the pull request; see the module docstring."""
    web_host = github_web_host(config.github_api_url)
    parsed = parse_github_repo(inp.repo, web_host)
    if parsed is None:
        return _skipped(
            f"the repository {redact_url(inp.repo)} is not a GitHub repository on {web_host}"
            " (the host GITHUB_API_URL serves)"
        )
    if config.github_token is None or not config.github_token.get_secret_value():
        return _skipped("no GitHub token is configured (set GITHUB_TOKEN to open pull requests)")
    owner, name = parsed
    repository = f"{owner}/{name}"
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": f"Bearer {config.github_token.get_secret_value()}",
        "User-Agent": "jangar-worker",
    }
    try:
        async with httpx.AsyncClient(
            base_url=config.github_api_url,
            headers=headers,
            timeout=config.github_timeout_seconds,
            transport=transport,
            verify=_trust(config),
        ) as client:
            existing = await _find_open(client, owner, name, inp.branch)
            if existing is not None:
                log.info("pull_request_found", repository=repository, number=existing["number"])
                return await _update(client, owner, name, existing, inp)
            response = await client.post(
                f"/repos/{owner}/{name}/pulls",
                json={
                    "title": inp.title,
                    "head": inp.branch,
                    "base": inp.base_branch,
                    "body": inp.body,
                    "draft": inp.draft,
                },
            )
            if response.status_code == 201:
                pr = response.json()
                log.info("pull_request_created", repository=repository, number=pr["number"])
                return _result(pr, repository, created=True)
            if response.status_code == 422 and "already exists" in _message(response).lower():
                raced = await _find_open(client, owner, name, inp.branch)
                if raced is not None:
                    return _result(raced, repository, created=False)
                raise ApplicationError(
                    "GitHub says a pull request for this branch exists but none is open yet;"
                    " will retry",
                    type=GITHUB_UNAVAILABLE,
                )
            raise classify_response(response, "creating the pull request", repository)
    except httpx.TransportError as exc:
        raise ApplicationError(
            f"GitHub API at {config.github_api_url} unreachable ({type(exc).__name__}); will retry",
            type=GITHUB_UNAVAILABLE,
        ) from exc
