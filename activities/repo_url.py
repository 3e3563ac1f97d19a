"""Repository locations: which forms a work order's ``repo`` may take, and how to show one safely.

Pure string functions (no I/O), so the job models can use them inside workflow code too.

Accepted forms (the same rules as ``classifyRepo`` in convex/lib/jobRules.ts; both sides are
tested against convex/lib/contract.vectors.json):

- ``https://host[:port]/owner/name(.git)``, with no user part, query string or fragment
  (credentials hide there: give the worker ``GITHUB_TOKEN`` instead);
- ``ssh://[user@]host[:port]/path`` and the scp-like ``[user@]host:path`` (a user, no password);
- ``file:///absolute/path``;
- an absolute local path (``/srv/git/repo.git``). Whether it exists is checked by the activity,
  on the worker's machine, never in a model (models also run in workflow code). Local paths and
  ``file://`` are only cloned by a worker whose operator allowed them
  (``JANGAR_ALLOW_LOCAL_REPOS``; git itself runs with ``GIT_ALLOW_PROTOCOL``).

Refused: ``http://`` (git runs over https and ssh only), git's ``<transport>::<address>`` form
(``ext::`` and ``fd::`` run programs), a leading ``-``, ``.`` or ``..`` as a path segment (an
owner or repository name), whitespace and control characters, more than ``MAX_URL_LENGTH``
characters.

:func:`redact_url` is what logs, errors and results carry, should a credential ever get into a
location some other way.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from activities.contract import MAX_URL_LENGTH

RepoKind = Literal["https", "ssh", "file", "local"]

_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.+)$"
)
# The grammar classify_repo reads (convex/lib/jobRules.ts has the same expressions).
_URL_FORM = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?P<rest>[?#].*)?$",
    re.DOTALL,
)
_SCP_FORM = re.compile(
    r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>.+)$", re.DOTALL
)
_TRANSPORT_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::[0-9]{1,5})?$")
_HTTP_SCHEMES = ("http", "https")
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
_FORMS = (
    "an https:// URL, an ssh:// or user@host:path address, a file:// URL or an absolute local path"
)


def _space_or_control(ch: str) -> bool:
    code = ord(ch)
    return ch.isspace() or code < 32 or 0x7F <= code <= 0x9F or ch == "\ufeff"


def _dot_segments(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.split("/"))


def classify_repo(repo: str) -> RepoKind:
    """The kind of a repository location; ``ValueError`` naming the accepted forms otherwise.

    The message never repeats the value: it may carry a credential.
    """
    if not repo or any(_space_or_control(ch) for ch in repo):
        raise ValueError(f"repo must be {_FORMS}, without spaces or control characters")
    if len(repo) > MAX_URL_LENGTH:
        raise ValueError(f"repo is longer than {MAX_URL_LENGTH} characters")
    if repo.startswith("-"):
        raise ValueError("repo must not start with '-' (it would be read as a git option)")
    if _TRANSPORT_PREFIX.match(repo):
        raise ValueError(
            "repo must not name a git transport ('<transport>::<address>', e.g. ext:: or fd::):"
            " those run programs; use an https:// or ssh address"
        )
    if repo.startswith("/"):
        if _dot_segments(repo):
            raise ValueError("repo path must not contain '.' or '..' segments")
        return "local"
    url = _URL_FORM.match(repo)
    if url is not None:
        scheme = url.group("scheme").lower()
        authority, path = url.group("authority"), url.group("path")
        if url.group("rest") is not None:
            raise ValueError(
                "repo URL must not have a query string or fragment (credentials hide there);"
                " pass the plain URL and give the worker its token through GITHUB_TOKEN"
            )
        if scheme == "file":
            if authority or not path.startswith("/"):
                raise ValueError(
                    "file:// repo URL needs an absolute path and no host: file:///path/to/repo"
                )
            if _dot_segments(path):
                raise ValueError("repo path must not contain '.' or '..' segments")
            return "file"
        if scheme == "http":
            raise ValueError(
                "repo URL scheme 'http' is not allowed (git runs over https and ssh only);"
                " use https://"
            )
        if scheme != "https" and scheme not in _SSH_SCHEMES:
            raise ValueError(f"repo URL scheme {scheme!r} is not supported; repo must be {_FORMS}")
        userinfo, at, host_port = authority.rpartition("@")
        if at and (scheme == "https" or ":" in userinfo or not userinfo):
            raise ValueError(
                "repo URL must not carry credentials (a user, token or password before '@');"
                " pass the plain URL and give the worker its token through GITHUB_TOKEN"
            )
        if not _HOST_PORT.match(host_port):
            raise ValueError(f"repo URL has no valid host; repo must be {_FORMS}")
        if not path.strip("/"):
            raise ValueError("repo URL has no repository path (e.g. /owner/name.git)")
        if _dot_segments(path):
            raise ValueError("repo path must not contain '.' or '..' as a name")
        return "https" if scheme == "https" else "ssh"
    scp = _SCP_FORM.match(repo)
    if scp is not None:
        scp_path = scp.group("path")
        if scp_path.startswith("-"):
            raise ValueError("repo path must not start with '-'")
        if _dot_segments(scp_path):
            raise ValueError("repo path must not contain '.' or '..' as a name")
        return "ssh"
    raise ValueError(f"repo must be {_FORMS} (relative paths are ambiguous on a worker)")


def is_local_repo(repo: str) -> bool:
    """True for the forms only a worker that allows local repositories clones (path, file://)."""
    try:
        return classify_repo(repo) in ("local", "file")
    except ValueError:
        return False


def _netloc(parts: SplitResult, user: str | None) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{user}@{host}{port}" if user else f"{host}{port}"


def redact_url(repo: str) -> str:
    """The location with any credential removed: what may be logged, returned or stored.

    http(s): the whole user part goes (a token is often the user name). ssh: the user stays
    (``git@``), a password goes. A query string is dropped (tokens hide there too).
    """
    if "://" not in repo:
        return repo
    try:
        parts = urlsplit(repo)
        scheme = parts.scheme.lower()
        user = parts.username if scheme in _SSH_SCHEMES else None
        if parts.username is None and parts.password is None and not parts.query:
            return repo
        return urlunsplit((parts.scheme, _netloc(parts, user), parts.path, "", ""))
    except ValueError:
        return "<unparseable repository URL>"


def url_secrets(repo: str) -> list[str]:
    """The credential strings inside a repository URL (to scrub from git's own messages)."""
    if "://" not in repo:
        return []
    try:
        parts = urlsplit(repo)
    except ValueError:
        return []
    secrets: list[str] = []
    if parts.password:
        secrets.append(parts.password)
    if parts.username and parts.scheme.lower() in _HTTP_SCHEMES:
        secrets.append(parts.username)
    if parts.query:
        secrets.append(parts.query)
    return [s for s in secrets if len(s) >= 3]


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_text(text: str, repo: str | None = None) -> str:
    """Scrub credentials from free text (git's stderr): the repo's own secrets, then any
    ``scheme://user:pass@`` user part."""
    if repo:
        for secret in url_secrets(repo):
            text = text.replace(secret, "***")
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


def repo_host(repo: str) -> str | None:
    """The host name of an http(s) or ssh location (lower case); None for local ones."""
    if "://" in repo:
        try:
            host = urlsplit(repo).hostname
        except ValueError:
            return None
        return host.lower() if host else None
    if repo.startswith("/"):
        return None
    match = _SCP_LIKE.match(repo)
    return match.group("host").lower() if match else None


def github_web_host(api_url: str) -> str:
    """The host whose repositories a GitHub API serves.

    ``https://api.github.com`` serves ``github.com``; any ``api.<host>`` serves ``<host>``;
    GitHub Enterprise Server (``https://ghe.example/api/v3``) serves its own host. A stand-in
    API on ``http://127.0.0.1:PORT`` serves ``127.0.0.1``.
    """
    host = (urlsplit(api_url).hostname or "").lower()
    return host[4:] if host.startswith("api.") else host


def parse_github_repo(repo: str, web_host: str) -> tuple[str, str] | None:
    """``(owner, name)`` when ``repo`` is a repository on ``web_host``, else None.

    Ports are ignored when comparing hosts. Paths must be exactly ``owner/name`` (``.git`` and a
    trailing slash allowed).
    """
    host = repo_host(repo)
    if host is None or host != web_host.lower():
        return None
    if "://" in repo:
        path = urlsplit(repo).path
    else:
        match = _SCP_LIKE.match(repo)
        if match is None:  # pragma: no cover - repo_host already matched it
            return None
        path = match.group("path")
    segments = [s for s in path.strip("/").split("/") if s]
    if len(segments) != 2:
        return None
    owner, name = segments
    name = name.removesuffix(".git")
    valid = re.compile(r"^[A-Za-z0-9_.-]+$")
    if not owner or not name or not valid.match(owner) or not valid.match(name):
        return None
    return owner, name
