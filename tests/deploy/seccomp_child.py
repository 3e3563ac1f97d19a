"""Load an OCI seccomp profile into this process, then try the job sandbox and a few syscalls.

``python -m tests.deploy.seccomp_child PROFILE_JSON`` does what a container runtime does with a
``Localhost`` profile (libseccomp, through ctypes: the default action, the architectures, one
rule per syscall name, names this libseccomp does not know skipped as runc skips them), after
``no_new_privs`` (what ``allowPrivilegeEscalation: false`` sets). Then, under the filter, it runs
the worker's real sandbox probe (bubblewrap making its namespaces) and calls each syscall named
on the command line after the profile, printing one JSON object: ``{"probe": ..., "errors":
{name: errno or 0}}``. A child process, because a seccomp filter cannot be removed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from pathlib import Path
from typing import Any

from activities.sandbox import SandboxConfig, SandboxUnavailable, probe

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
PR_SET_NO_NEW_PRIVS = 38
ARCHES = {
    "SCMP_ARCH_X86_64": b"x86_64",
    "SCMP_ARCH_X86": b"x86",
    "SCMP_ARCH_X32": b"x32",
    "SCMP_ARCH_AARCH64": b"aarch64",
    "SCMP_ARCH_ARM": b"arm",
}


def _action(name: str, errno: int) -> int:
    if name == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return SCMP_ACT_ERRNO | (errno & 0xFFFF)
    raise ValueError(f"action {name} is not used by this loader")


def load(profile: dict[str, Any], lib: ctypes.CDLL, libc: ctypes.CDLL) -> None:
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(_action(profile["defaultAction"], profile.get("defaultErrnoRet", 1)))
    assert ctx, "seccomp_init failed"
    for arch in profile.get("architectures", []):
        token = lib.seccomp_arch_resolve_name(ARCHES[arch])
        result = lib.seccomp_arch_add(ctx, token)
        assert result in (0, -17), f"seccomp_arch_add({arch}) = {result}"  # -EEXIST: native
    for rule in profile["syscalls"]:
        action = _action(rule["action"], rule.get("errnoRet", 1))
        for name in rule["names"]:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # not a syscall this libseccomp knows: runc skips it too
                continue
            result = lib.seccomp_rule_add(ctx, action, number, 0)
            assert result == 0, f"seccomp_rule_add({name}) = {result}"
    assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    assert lib.seccomp_load(ctx) == 0, "seccomp_load failed"


def main(argv: list[str]) -> int:
    profile = json.loads(Path(argv[0]).read_text())
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    libc = ctypes.CDLL(None, use_errno=True)
    load(profile, lib, libc)
    out: dict[str, Any] = {}
    try:
        out["probe"] = {"ok": True, "message": probe(SandboxConfig(), timeout=20)}
    except SandboxUnavailable as exc:
        out["probe"] = {"ok": False, "message": str(exc)}
    errors: dict[str, int] = {}
    for name in argv[1:]:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        ctypes.set_errno(0)
        # Harmless arguments: every call below fails with EINVAL/EFAULT/EBADF when allowed.
        result = libc.syscall(number, -1, 0, 0, 0, 0)
        errors[name] = ctypes.get_errno() if result == -1 else 0
    out["errors"] = errors
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
