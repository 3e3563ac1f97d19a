"""deploy/seccomp/jangar-worker.json: the stricter seccomp profile for the worker container.

Loaded for real: a child process puts the profile into the kernel with libseccomp (as a
container runtime does with a ``Localhost`` profile) and then runs the worker's own sandbox
probe under it, so the test shows bubblewrap works under the profile and the denied syscalls
are denied. A profile that denies ``mount`` is the control: the probe fails under it.
"""

from __future__ import annotations

import ctypes.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import ROOT, worker_container

PROFILE = ROOT / "deploy" / "seccomp" / "jangar-worker.json"
# What bubblewrap itself calls to build the sandbox; none of it may be denied.
BWRAP_NEEDS = {"clone", "clone3", "unshare", "mount", "umount2", "pivot_root", "sethostname"}
MUST_DENY = {"kexec_load", "init_module", "finit_module", "bpf", "keyctl", "perf_event_open"}

requires_loader = pytest.mark.skipif(
    ctypes.util.find_library("seccomp") is None or shutil.which("bwrap") is None,
    reason="needs libseccomp (apt-get install libseccomp2) and bubblewrap (apt-get install"
    " bubblewrap) to load the profile and run the sandbox under it",
)


def profile() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(PROFILE.read_text())
    return doc


def denied() -> set[str]:
    return {
        name
        for rule in profile()["syscalls"]
        if rule["action"] != "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }


def run_under(path: Path, *syscalls: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.deploy.seccomp_child", str(path), *syscalls],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_profile_denies_kernel_administration_and_never_what_bwrap_needs() -> None:
    doc = profile()
    assert doc["defaultAction"] == "SCMP_ACT_ALLOW"
    # Every ABI of the machine's architecture is filtered (a 32-bit syscall must not bypass it).
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(doc["architectures"])
    assert {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"} <= set(doc["architectures"])
    for rule in doc["syscalls"]:
        assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] in (1, 38), rule
        assert rule["names"] == sorted(set(rule["names"]))
    assert denied() >= MUST_DENY
    assert not BWRAP_NEEDS & denied()


def test_the_deployment_names_the_profile_as_its_stricter_option() -> None:
    """The manifest ships seccomp Unconfined (works without node setup) and points at this file
    for a Localhost profile; both are documented in deploy/README.md."""
    security = worker_container()["securityContext"]
    assert security["seccompProfile"]["type"] in ("Unconfined", "Localhost")
    if security["seccompProfile"]["type"] == "Localhost":
        assert security["seccompProfile"]["localhostProfile"] == PROFILE.name
    text = (ROOT / "deploy" / "k8s" / "deployment.yaml").read_text()
    assert "deploy/seccomp/jangar-worker.json" in text
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "seccomp/jangar-worker.json" in readme and "localhostProfile" in readme


@requires_loader
def test_under_the_profile_the_sandbox_works_and_denied_calls_fail() -> None:
    result = run_under(PROFILE, "keyctl", "bpf", "perf_event_open", "io_uring_setup", "getppid")
    assert result["probe"]["ok"], result["probe"]["message"]
    errors = result["errors"]
    assert errors["keyctl"] == errors["bpf"] == errors["perf_event_open"] == 1  # EPERM
    assert errors["io_uring_setup"] == 38  # ENOSYS: libraries fall back to plain I/O
    assert errors["getppid"] == 0


@requires_loader
def test_a_profile_that_denies_mount_breaks_the_sandbox(tmp_path: Path) -> None:
    """The control: what the runtime's default profile does without CAP_SYS_ADMIN (here just
    mount and unshare denied) stops bubblewrap, and the probe says seccomp may be why."""
    strict = tmp_path / "no-mount.json"
    strict.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": profile()["architectures"],
                "syscalls": [
                    {"names": ["mount", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
                ],
            }
        )
    )
    result = run_under(strict)
    assert not result["probe"]["ok"]
    assert "seccomp" in result["probe"]["message"]
