"""Git the worker runs must not be steerable by the workspace it runs in.

The agent (and every check) can write anything in the workspace, ``.git/`` included, and the
worker then runs its own git there (fetch, add, commit, diff, push) as itself, outside any
sandbox. Git executes programs named by configuration and selected by attributes, so a planted
``.git/config`` would run code as the worker. What git 2.39 executes, or lets configuration
redirect, and how each is closed here:

- hooks (``.git/hooks/*``; ``--no-verify`` does not cover post-commit or
  reference-transaction, which run on every ref update): ``-c core.hooksPath=/dev/null``;
- ``core.fsmonitor`` (a command run by add, diff, status, commit): ``-c core.fsmonitor=false``
  and the config allow-list;
- ``filter.<x>.clean/smudge/process`` selected by a ``.gitattributes`` the agent writes: the
  allow-list, so no driver is defined and ``filter=x`` selects nothing (a ``-c`` override
  cannot neutralise drivers whose names the attacker picks);
- ``diff.external``, ``diff.<x>.command``/``textconv`` (porcelain ``git diff``): the
  allow-list, and no GIT_EXTERNAL_DIFF in the environment;
- ``include.path``/``includeIf.*.path`` (pull in any file as config): the allow-list; the
  config is read with ``--no-includes``;
- ``remote.<url>.uploadpack``/``receivepack``: ``git fetch file:///x`` reads
  ``remote."file:///x".uploadpack`` and runs it; the allow-list;
- ``url.<x>.insteadOf`` (send the worker's fetch or push elsewhere, or to ``ext::cmd``): the
  allow-list, plus ``GIT_ALLOW_PROTOCOL`` in the environment (https and ssh; ``file`` too only
  where the operator allows local repositories, :func:`allowed_protocols`), which overrides any
  ``protocol.*`` configuration, and ``-c protocol.allow=never`` with the same protocols allowed
  explicitly, should the variable ever be dropped;
- ``core.sshCommand``, ``core.gitProxy``, ``credential.helper``, ``core.askPass``,
  ``gpg.program``, ``core.editor``, ``core.pager``: GIT_SSH_COMMAND in the environment wins,
  ``-c credential.helper=`` empties the helper list, signing is off, the allow-list drops the
  rest;
- ``core.worktree``, ``extensions.*`` (worktreeConfig, partialClone...): the allow-list (a
  worktree elsewhere would be another job's workspace);
- global and system config and attributes (``~/.gitconfig`` and ``~/.config/git/*`` are
  writable by an unsandboxed agent): ``GIT_CONFIG_GLOBAL=/dev/null``,
  ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_ATTR_NOSYSTEM=1``, ``-c core.attributesFile=/dev/null`` and
  ``-c core.excludesFile=/dev/null``;
- automatic gc, which daemonizes (``setsid``) and so outlives the process group:
  ``-c gc.auto=0 -c maintenance.auto=false``;
- nested repositories and submodules: to tell whether a nested repository's work tree is
  dirty, ``git add``/``diff``/``commit`` run ``git status`` *inside* it, with its own
  config (filters, textconv...; only our ``-c`` overrides are inherited):
  ``-c diff.ignoreSubmodules=dirty`` (the commit a nested repository is at is still
  recorded and diffed; its uncommitted changes never were). ``git add`` ignores that
  setting, so the config of every nested repository recorded in the index is reduced to the
  allow-list too (its ``.git`` must be a directory, or a gitfile into ``.git/modules``); plus
  ``-c submodule.recurse=false``, ``fetch.recurseSubmodules=false``,
  ``push.recurseSubmodules=no``;
- ``objects/info/alternates`` (read another repository's objects, e.g. another job's, and
  push them): deleted, except a line the worker itself granted: the objects directory of a
  repository cache's mirror (:mod:`activities.repo_cache`) for which that cache wrote a
  *borrow grant* naming this very workspace, outside it (see :func:`borrow_grant`). Every
  other line goes (the file is rewritten with the granted lines only);
  ``objects/info/http-alternates``: deleted; ``refs/replace/*`` (change what the worker sees
  and pushes): ``GIT_NO_REPLACE_OBJECTS=1``;
- ``.git`` as a symlink or gitfile, a ``commondir`` file, symlinked objects/refs/HEAD/index:
  refused (:class:`UnsafeRepository`); symlinks under ``.git/refs`` are deleted;
- discovery of a repository above the workspace: ``GIT_CEILING_DIRECTORIES`` = its parent.

The design, in one sentence: the repository-local config is the one input the workspace
controls that git turns into program execution, so before every worker git command it is
reduced to an allow-list of keys the worker itself writes (:data:`ALLOWED_CONFIG`, read with
git's own parser, ``git config --file .git/config --no-includes --list -z``, which executes
nothing), and everything around it comes from ``-c`` overrides (highest precedence) and the
environment. A deny-list of ``-c`` overrides alone cannot work: driver names
(``filter.<name>.clean``) are chosen by the attacker. Attributes (``.gitattributes`` in the
tree) stay as they are: without drivers in the config they select nothing that executes
(built-in conversions such as ``text``/``eol``/``working-tree-encoding`` run no program).

Rewriting happens only when something is removed; each removal is logged. Not covered: git
*reading* what the workspace holds (a crafted index or pack) is git's own parsing; keep git
patched. The agent's own git inside its sandbox is not affected (it runs with whatever config
the agent writes, as the agent).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# (key, value) passed as ``git -c key=value`` to every worker git command.
HARDENING_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),  # a cache in the index the agent writes: do not trust it
    ("core.attributesFile", "/dev/null"),
    ("core.excludesFile", "/dev/null"),
    ("credential.helper", ""),  # empty resets the list of helpers
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("diff.ignoreSubmodules", "dirty"),  # never run git inside a nested repository
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("push.recurseSubmodules", "no"),
)

REMOTE_PROTOCOLS: tuple[str, ...] = ("https", "ssh")
"""The transports worker git may use; ``file`` (local paths and file:// URLs) only when allowed."""

# Repository-local config keys that survive (canonical form: section and key lower-case).
# Exactly what ``git init`` and ``git remote add origin`` write.
ALLOWED_CONFIG: tuple[str, ...] = (
    "core.repositoryformatversion",
    "core.filemode",
    "core.bare",
    "core.logallrefupdates",
    "core.symlinks",
    "core.ignorecase",
    "core.precomposeunicode",
    "extensions.objectformat",
    "remote.origin.url",
    "remote.origin.fetch",
)

MINIMAL_CONFIG = (
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
    "\tlogallrefupdates = true\n"
)
# Entries of .git that must be what they seem: a symlink there points git at another tree.
_NO_SYMLINKS = ("HEAD", "objects", "refs", "packed-refs", "index", "info", "objects/info")
# Files that make git read another repository's data (alternates: unless granted, below).
_ALTERNATES = "objects/info/alternates"
_REMOVE = ("objects/info/http-alternates",)
_REFUSE = ("commondir",)
# Borrow grants: ``<mirror>/../borrowers/<borrower_name(worktree)>`` (see borrow_grant).
BORROWERS_DIR = "borrowers"


class UnsafeRepository(Exception):
    """The workspace's .git was tampered with in a way that cannot be repaired safely."""


@dataclass(frozen=True)
class SanitizeReport:
    """What :func:`sanitize_repository` removed (empty: nothing)."""

    removed_keys: tuple[str, ...] = ()
    removed_files: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.removed_keys or self.removed_files)


def allowed_protocols(allow_local: bool = False) -> tuple[str, ...]:
    """The transports git may use: https and ssh, plus file when local repositories are allowed
    (``JANGAR_ALLOW_LOCAL_REPOS``). Never http, ext, fd or any other remote helper."""
    return (*REMOTE_PROTOCOLS, "file") if allow_local else REMOTE_PROTOCOLS


def borrower_name(worktree: Path) -> str:
    """The file name of ``worktree``'s borrow grant: a hash of its real path."""
    real = os.path.realpath(worktree)
    return hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def borrow_grant(objects_dir: Path, worktree: Path) -> Path:
    """Where the worker records that ``worktree`` may read ``objects_dir`` as an alternate.

    ``objects_dir`` is a mirror's objects directory, ``<entry>/mirror.git/objects``; the grant
    is ``<entry>/borrowers/<borrower_name(worktree)>``, a regular file holding the workspace's
    real path. It lives beside the mirror, never in the workspace, so the agent (which can
    write only its workspace) cannot grant itself another repository's objects: pointing its
    alternates at another mirror finds no grant there, and the line is removed.
    """
    return objects_dir.parent.parent / BORROWERS_DIR / borrower_name(worktree)


def granted_alternate(line: str, worktree: Path) -> bool:
    """True when the alternates line ``line`` of ``worktree``'s ``.git`` was granted.

    Granted means: an absolute, normalised path without symlinks (its real path is itself),
    named ``objects``, a directory outside the workspace, with a regular-file grant at
    :func:`borrow_grant` (no symlink on the way) whose content is the workspace's real path.
    Relative lines, quoted lines and comments are never granted.
    """
    if not line or not line.startswith("/") or os.path.normpath(line) != line:
        return False
    real_worktree = os.path.realpath(worktree)
    objects = Path(line)
    if os.path.realpath(line) != line or objects.name != "objects" or not objects.is_dir():
        return False
    if objects.is_relative_to(real_worktree):
        return False
    grant = borrow_grant(objects, worktree)
    try:
        st = grant.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or os.path.realpath(grant) != str(grant):
        return False
    try:
        recorded = grant.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False
    return recorded.strip("\n") == real_worktree


def _repair_alternates(path: Path, worktree: Path | None) -> list[str]:
    """Keep only granted lines of an alternates file (none granted: delete it)."""
    if not os.path.lexists(path):
        return []
    mode = path.lstat().st_mode
    if stat.S_ISDIR(mode):
        raise UnsafeRepository(
            f"{path} is a directory; the workspace was tampered with: delete it so that it is"
            " prepared afresh"
        )
    if worktree is not None and stat.S_ISREG(mode):
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        kept = [line for line in lines if granted_alternate(line, worktree)]
        if kept == lines:
            return []
        if kept:
            write_atomically(path, "".join(f"{line}\n" for line in kept))
            return [f"{path} (ungranted lines)"]
    path.unlink()
    return [str(path)]


def hardening_args(allow_local: bool = False) -> list[str]:
    """``-c key=value`` arguments for every worker git command (before the subcommand)."""
    args: list[str] = []
    for key, value in HARDENING_CONFIG:
        args += ["-c", f"{key}={value}"]
    args += ["-c", "protocol.allow=never", "-c", "protocol.ext.allow=never"]
    for protocol in allowed_protocols(allow_local):
        args += ["-c", f"protocol.{protocol}.allow=always"]
    return args


def hardening_env(cwd: Path | None = None, *, allow_local: bool = False) -> dict[str, str]:
    """Environment for a worker git command (merge into the child env); with ``cwd``, git
    also stops looking for a repository above it. ``GIT_ALLOW_PROTOCOL`` limits the transports
    (and overrides every ``protocol.*`` setting)."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_ALLOW_PROTOCOL": ":".join(allowed_protocols(allow_local)),
    }
    if cwd is not None:
        env["GIT_CEILING_DIRECTORIES"] = str(Path(os.path.abspath(cwd)).parent)
    return env


def _quote(value: str) -> str:
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
    )
    return f'"{escaped}"'


def render_config(entries: Sequence[tuple[str, str | None]]) -> str:
    """Git config text for canonical ``(key, value)`` entries (value None: a bare boolean)."""
    lines: list[str] = []
    current: tuple[str, str | None] | None = None
    for key, value in entries:
        section, _, rest = key.partition(".")
        subsection, _, name = rest.rpartition(".")
        header = (section, subsection or None)
        if header != current:
            if subsection:
                sub = subsection.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'[{section} "{sub}"]')
            else:
                lines.append(f"[{section}]")
            current = header
        lines.append(f"\t{name}" if value is None else f"\t{name} = {_quote(value)}")
    return "\n".join(lines) + "\n"


def parse_list_z(output: bytes) -> list[tuple[str, str | None]]:
    """``git config --list -z`` output: entries ``key\\nvalue\\0`` (``key\\0``: no value)."""
    entries: list[tuple[str, str | None]] = []
    for item in output.split(b"\0"):
        if not item:
            continue
        key, newline, value = item.partition(b"\n")
        text = key.decode("utf-8", errors="surrogateescape")
        entries.append((text, value.decode("utf-8", errors="surrogateescape") if newline else None))
    return entries


async def _git_output(
    git: str, args: Sequence[str], cwd: Path, time_limit: float, what: str
) -> bytes:
    """stdout of a git command that only reads (run hardened); UnsafeRepository if it fails."""
    proc = await asyncio.create_subprocess_exec(
        git,
        *hardening_args(),
        *args,
        cwd=str(cwd),
        env={"PATH": os.environ.get("PATH", os.defpath), **hardening_env(cwd)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), time_limit)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        detail = stderr.decode(errors="replace").strip()[-300:]
        raise UnsafeRepository(
            f"{what} failed ({detail}); the workspace was damaged: delete it so that it is"
            " prepared afresh"
        )
    return stdout


async def _read_config(path: Path, git: str, time_limit: float) -> list[tuple[str, str | None]]:
    args = ["config", "--file", str(path), "--no-includes", "--list", "-z"]
    return parse_list_z(await _git_output(git, args, Path("/"), time_limit, f"reading {path}"))


async def _gitlinks(worktree: Path, git: str, time_limit: float) -> list[str]:
    """Paths of the nested repositories (submodules) recorded in the workspace's index."""
    listing = await _git_output(
        git, ["ls-files", "--stage", "-z"], worktree, time_limit, "listing the index"
    )
    paths: list[str] = []
    for entry in listing.split(b"\0"):
        meta, tab, path = entry.partition(b"\t")
        if tab and meta.startswith(b"160000 "):
            paths.append(path.decode("utf-8", errors="surrogateescape"))
    return paths


def _nested_git_dir(worktree: Path, top_git_dir: Path, path: str) -> Path | None:
    """The git directory of the nested repository at ``path`` (None: not checked out)."""
    current = worktree
    for part in Path(path).parts:
        current = current / part
        if current.is_symlink():
            raise UnsafeRepository(
                f"{current} is a symlink on the way to the nested repository {path}; the"
                " workspace was tampered with: delete it so that it is prepared afresh"
            )
    dotgit = current / ".git"
    if dotgit.is_symlink():
        raise UnsafeRepository(f"{dotgit} is a symlink; delete the workspace")
    if dotgit.is_dir():
        return dotgit
    if not dotgit.is_file():
        return None
    pointer = dotgit.read_text(errors="replace").strip()
    target = pointer.removeprefix("gitdir:").strip()
    resolved = Path(os.path.realpath(current / target))
    modules = Path(os.path.realpath(top_git_dir / "modules"))
    if not pointer.startswith("gitdir:") or not resolved.is_relative_to(modules):
        raise UnsafeRepository(
            f"{dotgit} points outside the workspace's .git/modules ({target!r}); delete the"
            " workspace so that it is prepared afresh"
        )
    return resolved


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (a symlink there is replaced, not followed)."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".jangar")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)  # replaces a symlink itself, never writes through it
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _remove_symlinks_under(directory: Path) -> list[str]:
    removed: list[str] = []
    if not directory.is_dir() or directory.is_symlink():
        return removed
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink():
                path.unlink()
                removed.append(str(path))
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    return removed


def _repair_layout(git_dir: Path, worktree: Path | None) -> tuple[bool, list[str]]:
    """Check and repair ``.git`` around its config: (config needs reading, files removed).

    ``worktree``: the workspace whose borrow grants count for alternates (None: none do)."""
    try:
        st = git_dir.lstat()
    except FileNotFoundError:
        return False, []
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRepository(
            f"{git_dir} is not a directory (a symlink or a gitfile pointing elsewhere); the"
            " workspace was tampered with: delete it so that it is prepared afresh"
        )
    for name in _REFUSE:
        if os.path.lexists(git_dir / name):
            raise UnsafeRepository(
                f"{git_dir / name} exists (it would point git at another repository); delete"
                " the workspace so that it is prepared afresh"
            )
    for name in _NO_SYMLINKS:
        if (git_dir / name).is_symlink():
            raise UnsafeRepository(
                f"{git_dir / name} is a symlink; the workspace was tampered with: delete it so"
                " that it is prepared afresh"
            )
    removed: list[str] = _repair_alternates(git_dir / _ALTERNATES, worktree)
    for name in _REMOVE:
        path = git_dir / name
        if os.path.lexists(path):
            path.unlink()
            removed.append(str(path))
    removed += _remove_symlinks_under(git_dir / "refs")
    config = git_dir / "config"
    if os.path.lexists(config) and not stat.S_ISREG(config.lstat().st_mode):
        write_atomically(config, MINIMAL_CONFIG)  # a symlink: never read or write through it
        removed.append(f"{config} (not a regular file; replaced by a minimal config)")
        return False, removed
    return config.exists(), removed


async def _sanitize_git_dir(
    git_dir: Path, allowed: Sequence[str], git: str, time_limit: float, worktree: Path | None
) -> tuple[list[str], list[str]]:
    read_config, removed_files = _repair_layout(git_dir, worktree)
    removed_keys: list[str] = []
    if read_config:
        config = git_dir / "config"
        entries = await _read_config(config, git, time_limit)
        kept = [(key, value) for key, value in entries if key in allowed]
        removed_keys = [key for key, _value in entries if key not in allowed]
        if removed_keys:
            write_atomically(config, render_config(kept))
    return removed_keys, removed_files


async def sanitize_repository(
    worktree: Path,
    *,
    allowed: Sequence[str] = ALLOWED_CONFIG,
    git: str = "git",
    time_limit: float = 30.0,
    nested: bool = True,
) -> SanitizeReport:
    """Make ``worktree/.git`` safe for the worker's own git (see the module docstring).

    Nothing to do when there is no ``.git`` yet. Removes config keys not in ``allowed``
    (rewriting ``.git/config`` atomically), alternates lines not granted to this workspace
    (:func:`granted_alternate`; a nested repository's are never granted), symlinks under
    ``.git/refs``; raises :class:`UnsafeRepository` for a ``.git`` that is not a plain
    directory, a ``commondir`` file, or symlinked objects/refs/HEAD/index. With ``nested``,
    the same is done for every nested repository recorded in the index (``git add`` runs
    ``git status`` inside those, with their own config); their keys are reported as
    ``<path>:<key>``.
    """
    git_dir = worktree / ".git"
    removed_keys, removed_files = await _sanitize_git_dir(
        git_dir, allowed, git, time_limit, worktree
    )
    if nested and (git_dir / "index").is_file() and not (git_dir / "index").is_symlink():
        for path in await _gitlinks(worktree, git, time_limit):
            sub = _nested_git_dir(worktree, git_dir, path)
            if sub is None:
                continue
            keys, files = await _sanitize_git_dir(sub, allowed, git, time_limit, None)
            removed_keys += [f"{path}:{key}" for key in keys]
            removed_files += files
    report = SanitizeReport(tuple(removed_keys), tuple(removed_files))
    if report:
        log.warning(
            "workspace_git_sanitized: removed config keys %s and files %s from %s",
            ", ".join(sorted(set(removed_keys))) or "none",
            ", ".join(removed_files) or "none",
            git_dir,
        )
    return report
