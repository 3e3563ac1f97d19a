"""A sandbox for the untrusted processes of a job: the agent and every check.

The agent runs code a prompt asked for, and the checks run code the agent wrote. Without a
sandbox both run as the worker's own user, in its PID namespace and filesystem, and can read
the worker's secrets (``/proc/$PPID/environ``), read and change other jobs' workspaces, signal
the worker, and leave processes behind (``setsid sleep 4321 &``). This module builds the
command line that runs such a process under `bubblewrap <https://github.com/containers/bubblewrap>`_
(``bwrap``) instead, and :func:`probe` checks at worker start that it works.

What a sandboxed process gets (:func:`bwrap_argv`)
--------------------------------------------------

- Its own user, PID, mount, IPC, UTS and cgroup namespaces (``--unshare-all --unshare-user``),
  running as an unprivileged uid/gid (default 1000) with every capability dropped. Its
  ``/proc`` is a fresh procfs of its own PID namespace: it sees only its own processes, so it
  cannot read the worker's environment or command line, and it cannot signal the worker or
  another job (they have no PID in its namespace). PID 1 in the namespace is bwrap itself.
- A network namespace of its own with only a loopback interface unless the step's policy
  allows the network (``--share-net``: the host's network, including its 127.0.0.1; default:
  the agent has the network, checks do not). ``/etc/resolv.conf`` (and its symlink target) and
  the TLS trust store are readable when the network is on.
- A filesystem made of: read-only binds of the system directories (``/usr /bin /sbin /lib*
  /etc``) and of the operator's extra read-only paths (a toolchain prefix); minus every file or
  directory under ``/etc`` that is not world-readable (rescanned at most once a minute;
  ``/etc/shadow``, ``/etc/ssl/private``...:
  when the worker runs as root its uid is the sandbox's uid, so "owner-readable" would mean
  readable); minus the hidden paths (the worker's data directory: other jobs' workspaces,
  artifacts), each covered by an empty read-only tmpfs; then, writable, the job's workspace
  (on top of the hidden data directory), a fresh HOME and TMPDIR made for this step, and an
  in-memory ``/tmp`` of bounded size. Everything else, the root included, is read-only, and
  nothing else of the host exists inside: not the worker's HOME (``~/.codex``, ``~/.ssh``,
  ``~/.gitconfig``), not ``/root``, ``/home``, ``/var``, ``/run`` (docker.sock...), ``/opt``.
- Exactly the environment the caller built (the allow-listed one of
  :func:`activities.process.child_env`) with HOME and TMPDIR pointing at the step's own
  directories. bwrap is *started* with that environment and passes it on unchanged: the
  sandbox's PID 1 is bwrap, and its ``/proc/1/environ`` is visible inside, so the environment
  bwrap starts with must already be the filtered one. The values are deliberately not passed
  as ``--clearenv --setenv NAME VALUE``: bwrap's argv is readable by every local user in
  ``/proc/<pid>/cmdline`` on the host (and as ``/proc/1/cmdline`` inside), which would put an
  agent's API key on display.
- ``--die-with-parent`` (the sandbox is SIGKILLed when the worker dies, even by SIGKILL) and
  ``--new-session`` (no TIOCSTI into a terminal; no job control over the worker's session).

Nothing outlives its step: when PID 1 of a PID namespace exits, the kernel kills every other
process in it, including ones that called ``setsid`` or double-forked. bwrap's PID 1 exits
when the command exits, so a normal end takes the leftovers with it, and
:func:`activities.process.run_process` stops a timed-out or cancelled step by SIGTERMing the
namespace's processes, then SIGKILLing its PID 1, then reaping bwrap.

Why bubblewrap
--------------

- Plain ``unshare(1)`` can make the namespaces but not the filesystem view: building a
  read-only root with a few binds, a private ``/proc`` and tmpfs covers by hand is what bwrap
  already does correctly (mount propagation, ``pivot_root``, no setuid needed), in a small C
  program that Flatpak, GNOME and the Codex CLI itself rely on.
- nsjail does as much (plus seccomp and rlimits) but is not packaged in Debian/Ubuntu stable
  and is configured through protobuf files; firejail is setuid-root with a large attack
  surface and profile-driven defaults meant for desktop apps.
- gVisor (runsc) gives a stronger boundary (a user-space kernel) but needs an OCI runtime
  setup, a rootfs per job and a different deployment; it fits better as the container runtime
  of the whole worker pod than as a per-process wrapper.
- bwrap is one ``apt-get install bubblewrap``, unprivileged (user namespaces), starts in a few
  milliseconds, and its command line is readable in a log line.

What it does not guarantee
--------------------------

- Same kernel: a kernel exploit escapes. User namespaces also expose more kernel surface to
  the sandboxed process than it would otherwise have. There is no seccomp filter (bwrap can
  load one with ``--seccomp FD``; none is built here), no Landlock, no LSM profile.
- No resource limits: CPU, memory, PIDs (a fork bomb), disk space in the workspace are not
  bounded here; use the container's cgroup limits (the in-memory ``/tmp`` is the one thing
  capped, by ``tmpfs_size``). Time is bounded by the step's time limit.
- Network on means the host's network namespace: the host's loopback services (the worker's
  health port, a local Temporal), the cloud metadata endpoint and the internet are reachable.
  Filtering egress per destination is the job of a firewall/NetworkPolicy around the worker.
- Anything under an exposed path that is world-readable is readable: secrets the operator
  mounts under ``/etc`` with mode 0644 (a Kubernetes Secret volume's default) must be listed in
  ``hidden``.
- Nested sandboxes: user namespaces can be nested (the Codex CLI's own Linux sandbox still
  works), but a nested ``bwrap --proc`` fails because our ``/proc`` has read-only sub-mounts.
- With ``mode="off"`` none of the above holds; see :mod:`activities.process` for the best
  effort made then.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

SandboxMode = Literal["bwrap", "off"]
SANDBOX_MODES: tuple[SandboxMode, ...] = ("bwrap", "off")

# The system directories every sandboxed process sees read-only (those that exist; a merged-usr
# symlink such as /bin -> usr/bin is recreated as the same symlink).
SYSTEM_READ_ONLY: tuple[Path, ...] = tuple(
    Path(p) for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
)
# Under these, anything that is not world-readable is hidden (see the module docstring).
PRIVATE_SCAN_ROOTS: tuple[Path, ...] = (Path("/etc"),)
DEFAULT_TMPFS_SIZE = 256 * 1024 * 1024
SANDBOX_TMP = Path("/tmp")

OFF_WARNING = (
    "JANGAR_SANDBOX=off: the agent and the checks run unsandboxed, as the worker's own user:"
    " they can read the worker's environment and files, other jobs' workspaces, signal the"
    " worker, and leave processes behind (only the process group and processes carrying the"
    " step's marker are stopped). Use JANGAR_SANDBOX=bwrap in production."
)


class SandboxUnavailable(RuntimeError):
    """The sandbox does not work on this machine; the message says why and how to fix it."""


def parse_mode(value: str | None) -> SandboxMode:
    """``JANGAR_SANDBOX``'s value as a mode. Unset or empty means ``bwrap``: the safe default;
    turning it off must be explicit."""
    cleaned = (value or "").strip().lower()
    if not cleaned:
        return "bwrap"
    if cleaned == "bwrap":
        return "bwrap"
    if cleaned == "off":
        return "off"
    raise ValueError(f"JANGAR_SANDBOX must be one of {', '.join(SANDBOX_MODES)}; got {value!r}")


def _absolute(paths: Iterable[Path | str], what: str) -> tuple[Path, ...]:
    out = tuple(Path(p) for p in paths)
    for path in out:
        if not path.is_absolute():
            raise ValueError(f"{what} must be absolute paths; got {str(path)!r}")
    return out


@dataclass(frozen=True)
class SandboxConfig:
    """The worker-wide sandbox settings (what the operator configures once).

    ``read_only`` and ``extra_read_only`` are bound read-only; ``hidden`` paths are covered by
    an empty read-only tmpfs even when they lie under a read-only path (the worker's data
    directory belongs here, and any secret the operator mounts under ``/etc``).
    """

    mode: SandboxMode = "bwrap"
    bwrap: str = "bwrap"
    read_only: tuple[Path, ...] = SYSTEM_READ_ONLY
    extra_read_only: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    private_scan_roots: tuple[Path, ...] = PRIVATE_SCAN_ROOTS
    uid: int = 1000
    gid: int = 1000
    hostname: str = "jangar-sandbox"
    tmpfs_size: int = DEFAULT_TMPFS_SIZE
    nested_userns: bool = True  # False adds --disable-userns (breaks the Codex CLI's sandbox)

    def __post_init__(self) -> None:
        if self.mode not in SANDBOX_MODES:
            raise ValueError(f"sandbox mode must be one of {SANDBOX_MODES}; got {self.mode!r}")
        for name in ("read_only", "extra_read_only", "hidden", "private_scan_roots"):
            object.__setattr__(self, name, _absolute(getattr(self, name), name))
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("the sandbox uid and gid must be unprivileged (greater than 0)")
        if self.tmpfs_size <= 0:
            raise ValueError("tmpfs_size must be positive")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def policy(
        self,
        *,
        workspace: Path,
        home: Path,
        tmp: Path,
        network: bool,
        read_only: tuple[Path, ...] = (),
    ) -> SandboxPolicy:
        """The policy of one step (the agent, or one check) of a job; ``read_only``: paths
        under the hidden data directory the step must read (the repository cache's objects
        its workspace borrows)."""
        return SandboxPolicy(
            config=self,
            workspace=workspace,
            home=home,
            tmp=tmp,
            network=network,
            read_only=read_only,
        )


@dataclass(frozen=True)
class SandboxPolicy:
    """How one step runs: its workspace (writable), its own HOME and TMPDIR, network or not,
    and any of the worker's own paths it may read (``read_only``, bound after the hidden
    ones)."""

    config: SandboxConfig
    workspace: Path
    home: Path
    tmp: Path
    network: bool = False
    read_only: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        _absolute((self.workspace, self.home, self.tmp), "workspace, home and tmp")
        _absolute(self.read_only, "read_only")

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def writable(self) -> tuple[Path, ...]:
        return (self.workspace, self.home, self.tmp)


@dataclass(frozen=True)
class SandboxedCommand:
    """What to start instead of the bare command: argv and the exact environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def step_dirs(private_root: Path, step: str) -> tuple[Path, Path]:
    """A fresh, empty ``(home, tmp)`` pair for one step under the job's private directory.

    ``private_root`` must not be inside the workspace (the agent would see other steps' homes)
    and should be under the hidden data directory. Anything left by an earlier attempt of the
    same step is deleted first, so every step starts from an empty HOME.
    """
    if not re.fullmatch(r"[A-Za-z0-9._-]+", step) or step in (".", ".."):
        raise ValueError(f"step name must be a plain file name; got {step!r}")
    base = private_root / step
    if base.exists():
        shutil.rmtree(base)
    home, tmp = base / "home", base / "tmp"
    for path in (home, tmp):
        path.mkdir(parents=True, mode=0o700)
    return home.resolve(), tmp.resolve()


def sandbox_env(policy: SandboxPolicy, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with HOME and TMPDIR (and TMP/TEMP) set to the step's own directories."""
    out = {name: value for name, value in env.items() if name not in ("TMP", "TEMP")}
    out["HOME"] = str(policy.home)
    out["TMPDIR"] = str(policy.tmp)
    return out


def _depth(path: Path) -> int:
    return len(path.parts)


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def private_paths(roots: Iterable[Path], max_entries: int = 20000) -> list[Path]:
    """Files and directories under ``roots`` that are not world-readable (or, for directories,
    not world-searchable), outermost only: what a sandbox must hide from a process that may
    share the owner's uid or groups. Symlinks are skipped (their targets are checked where
    they are)."""
    found: list[Path] = []
    seen = 0
    for root in roots:
        if not root.is_dir() or root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            keep: list[str] = []
            for name in [*dirnames, *filenames]:
                seen += 1
                if seen > max_entries:  # pragma: no cover - a pathological /etc
                    log.warning("sandbox_private_scan_truncated", extra={"root": str(root)})
                    return found
                path = Path(dirpath) / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                unsearchable = is_dir and not st.st_mode & stat.S_IXOTH
                private = not st.st_mode & stat.S_IROTH or unsearchable
                if private:
                    found.append(path)
                elif is_dir and name in dirnames:
                    keep.append(name)
            dirnames[:] = keep
    return found


_PRIVATE_CACHE: dict[tuple[Path, ...], tuple[float, list[Path]]] = {}
PRIVATE_SCAN_TTL = 60.0  # seconds a scan of /etc is reused (a full scan takes ~10-20 ms)


def _private_paths_cached(roots: tuple[Path, ...]) -> list[Path]:
    now = time.monotonic()
    hit = _PRIVATE_CACHE.get(roots)
    if hit is not None and now - hit[0] < PRIVATE_SCAN_TTL:
        return hit[1]
    found = private_paths(roots)
    _PRIVATE_CACHE[roots] = (now, found)
    return found


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _network_files(env: Mapping[str, str]) -> list[Path]:
    """What name resolution and TLS need beyond /etc: resolv.conf's symlink target
    (systemd-resolved's stub under /run), and SSL_CERT_FILE/SSL_CERT_DIR when set."""
    wanted: list[Path] = []
    resolv = Path("/etc/resolv.conf")
    if resolv.is_symlink():
        wanted.append(_resolved(resolv))
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        value = env.get(name)
        if value and os.path.isabs(value):
            wanted.append(_resolved(Path(value)))
    return wanted


def bwrap_argv(
    policy: SandboxPolicy, argv: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> list[str]:
    """The bwrap command line that runs ``argv`` in ``cwd`` under ``policy`` (see the module
    docstring). ``env`` is only read for the TLS paths to expose; start bwrap with
    :func:`sandbox_env`'s result as its whole environment."""
    if not argv:
        raise ValueError("argv must not be empty")
    config = policy.config
    program = shutil.which(config.bwrap)
    if program is None:  # not FileNotFoundError: that would read as "the agent is missing"
        raise SandboxUnavailable(
            f"the sandbox needs bubblewrap, but {config.bwrap!r} is not on PATH; install it"
            " (apt-get install bubblewrap) or set JANGAR_SANDBOX=off"
        )
    out: list[str] = [program, "--unshare-all", "--unshare-user"]
    if policy.network:
        out.append("--share-net")
    out += ["--uid", str(config.uid), "--gid", str(config.gid), "--hostname", config.hostname]
    out += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if not config.nested_userns:
        out.append("--disable-userns")

    # 1. The read-only view (parents before children), an in-memory /tmp, /proc and /dev.
    base: list[tuple[Path, list[str]]] = []
    visible: list[Path] = []
    for path in (*config.read_only, *config.extra_read_only):
        if path.is_symlink() and path in config.read_only:
            base.append((path, ["--symlink", os.readlink(path), str(path)]))
            continue
        if not path.exists():
            continue
        real = _resolved(path)
        base.append((path, ["--ro-bind", str(real), str(path)]))
        visible += [path, real]
    if policy.network:
        for extra in _network_files(env):
            if extra.exists() and not _under(extra, visible):
                base.append((extra, ["--ro-bind", str(extra), str(extra)]))
                visible.append(extra)
    base.append((SANDBOX_TMP, ["--size", str(config.tmpfs_size), "--tmpfs", str(SANDBOX_TMP)]))
    base.sort(key=lambda item: _depth(item[0]))
    for _path, args in base:
        out += args
    out += ["--proc", "/proc", "--dev", "/dev"]

    # 2. Hidden: private files under /etc, then the operator's hidden paths (the data dir).
    hidden_dirs: list[Path] = []
    for path in _private_paths_cached(config.private_scan_roots):
        if not _under(path, visible):
            continue
        if path.is_dir():
            out += ["--tmpfs", str(path)]
            hidden_dirs.append(path)
        else:
            out += ["--ro-bind", "/dev/null", str(path)]
    for path in sorted({_resolved(p) for p in config.hidden}, key=_depth):
        if path.is_dir() and _under(path, visible):
            out += ["--perms", "0755", "--tmpfs", str(path)]
            hidden_dirs.append(path)
        elif path.exists() and _under(path, visible):
            out += ["--ro-bind", "/dev/null", str(path)]

    # 3. The step's own read-only paths, then the writable ones: the workspace (on top of the
    # hidden data dir), the step's HOME and TMPDIR.
    for path in sorted({_resolved(p) for p in policy.read_only if p.exists()}, key=_depth):
        out += ["--ro-bind", str(path), str(path)]
    for path in sorted({_resolved(p) for p in policy.writable}, key=_depth):
        out += ["--bind", str(path), str(path)]

    # 4. Read-only again where bwrap had to create mount points: the hidden tmpfs, the root.
    for path in hidden_dirs:
        out += ["--remount-ro", str(path)]
    out += ["--remount-ro", "/"]
    out += ["--chdir", str(_resolved(cwd)), "--", *argv]
    return out


def wrap(
    policy: SandboxPolicy | None, argv: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> SandboxedCommand:
    """What to start for ``argv``: under bwrap, or (mode ``off``) the bare command with the
    step's HOME/TMPDIR; ``policy=None`` changes nothing."""
    if policy is None:
        return SandboxedCommand(tuple(argv), dict(env))
    child = sandbox_env(policy, env)
    if not policy.enabled:
        return SandboxedCommand(tuple(argv), child)
    return SandboxedCommand(tuple(bwrap_argv(policy, argv, cwd, child)), child)


def visible_roots(policy: SandboxPolicy) -> list[Path]:
    """Host paths a sandboxed process sees at the same path (read-only or writable); its
    ``/tmp`` is an empty tmpfs of its own, so nothing under the host's /tmp counts."""
    config = policy.config
    roots: list[Path] = []
    for path in (*config.read_only, *config.extra_read_only):
        if path.exists():
            roots += [path, _resolved(path)]
    own = (*policy.read_only, *policy.writable)
    return [*roots, *(_resolved(p) for p in own)]


def resolve_program(policy: SandboxPolicy, program: str, cwd: Path, env: Mapping[str, str]) -> str:
    """Check that ``program`` exists and that the sandbox will see it; ``FileNotFoundError``
    (like starting a missing program) with a message saying which, otherwise its path."""
    roots = visible_roots(policy)
    hidden_match: Path | None = None
    if "/" in program:
        candidates = [cwd / program if not os.path.isabs(program) else Path(program)]
    else:
        path_dirs = env.get("PATH", os.defpath).split(os.pathsep)
        candidates = [Path(d) / program for d in path_dirs if d and os.path.isabs(d)]
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if _under(candidate, roots) and _under(_resolved(candidate), roots):
            return str(candidate)
        hidden_match = hidden_match or candidate
    if hidden_match is not None:
        raise FileNotFoundError(
            2,
            f"{hidden_match} is outside the sandbox's read-only paths; add its prefix to the"
            " sandbox's extra read-only paths (or install it under /usr)",
            program,
        )
    raise FileNotFoundError(2, "No such file or directory", program)


_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"No permissions to creat\w* new namespace|Creating new namespace failed"
            r"|setting up uid map|unshare.*(not permitted|denied)|max_user_namespaces",
            re.IGNORECASE,
        ),
        "user namespaces are not available to this process. On the host: sysctl"
        " user.max_user_namespaces must be > 0, Debian's kernel.unprivileged_userns_clone=1,"
        " Ubuntu 24.04's kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile"
        " allowing userns for bwrap). In a container, the runtime's seccomp profile must allow"
        " unshare/clone with namespace flags (Docker: a custom --security-opt seccomp=...;"
        " Kubernetes: seccompProfile Unconfined or a profile that allows them)",
    ),
    (
        re.compile(r"Can't mount proc", re.IGNORECASE),
        "a fresh /proc cannot be mounted: the container runtime masks parts of /proc. Run the"
        " worker with an unmasked /proc (Docker: --security-opt systempaths=unconfined;"
        " Kubernetes: securityContext.procMount: Unmasked with hostUsers: false)",
    ),
    (
        re.compile(r"Failed to make / slave|mount|pivot_root", re.IGNORECASE),
        "bwrap cannot set up mounts here (container runtime restrictions: seccomp or an LSM"
        " denies mount in the new namespaces)",
    ),
)


def _hint(stderr: str) -> str:
    for pattern, hint in _HINTS:
        if pattern.search(stderr):
            return hint
    return "see bwrap's message above"


def probe(config: SandboxConfig, *, timeout: float = 20.0) -> str:
    """Run a trivial command in the sandbox; a one-line description when it works.

    Raises :class:`SandboxUnavailable` saying what failed and how to fix it: install
    bubblewrap, enable user namespaces, unmask /proc, or set ``JANGAR_SANDBOX=off`` (then every
    job logs :data:`OFF_WARNING`). The worker calls this once at start and refuses to run jobs
    when it fails.
    """
    if not config.enabled:
        return "sandbox off (JANGAR_SANDBOX=off): " + OFF_WARNING
    fix_off = " Or set JANGAR_SANDBOX=off to run the agent and checks unsandboxed (unsafe)."
    program = shutil.which(config.bwrap)
    if program is None:
        raise SandboxUnavailable(
            f"the sandbox needs bubblewrap, but {config.bwrap!r} is not on PATH. Install it"
            " (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap;"
            " Alpine: apk add bubblewrap)." + fix_off
        )
    try:
        version = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=timeout, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"{program} --version failed: {exc}." + fix_off) from exc
    with tempfile.TemporaryDirectory(prefix="jangar-sandbox-probe-") as scratch:
        root = Path(scratch).resolve()
        workspace = root / "workspace"
        workspace.mkdir()
        home, tmp = step_dirs(root / "private", "probe")
        policy = config.policy(workspace=workspace, home=home, tmp=tmp, network=False)
        script = (
            'echo ok > probe.txt && echo ok > "$HOME/h" && echo ok > "$TMPDIR/t"'
            ' && echo ok > /tmp/t && test "$(cat /proc/1/comm)" = bwrap && id -u'
        )
        command = wrap(policy, ["/bin/sh", "-c", script], workspace, {"PATH": "/usr/bin:/bin"})
        try:
            done = subprocess.run(
                list(command.argv),
                cwd=workspace,
                env=dict(command.env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxUnavailable(
                f"the sandbox probe did not finish within {timeout:g} s." + fix_off
            ) from exc
        except OSError as exc:
            raise SandboxUnavailable(f"{program} cannot be started: {exc}." + fix_off) from exc
        wrote = (workspace / "probe.txt").is_file()
        if done.returncode != 0 or not wrote or done.stdout.strip() != str(config.uid):
            stderr = done.stderr.strip()[-1500:] or "(no output)"
            raise SandboxUnavailable(
                f"the sandbox does not work: `{' '.join(command.argv[:3])} ... /bin/sh -c ...`"
                f" exited {done.returncode} (probe file written: {wrote}; output"
                f" {done.stdout.strip()!r}). bwrap said: {stderr}. Likely cause: {_hint(stderr)}."
                + fix_off
            )
    return (
        f"{version or 'bwrap'} works: own user/pid/mount/net namespaces, uid {config.uid},"
        f" read-only system, writable workspace/home/tmp"
    )
