"""deploy/deploy.sh, run for real against stand-in kubectl/npx/npm scripts that only record
how they were called."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    DEPLOY_SH,
    ROOT,
)

# --- deploy/deploy.sh ------------------------------------------------------------------------

STUB = """#!/usr/bin/env bash
# Stand-in for {name}: records the call (and the Convex variables it saw), then exits as told.
{{
  printf '%s' "{name}"; printf ' %s' "$@"; printf '\\n'
  if [[ "{name}" == npx ]]; then
    echo "  env CONVEX_SELF_HOSTED_ADMIN_KEY=${{CONVEX_SELF_HOSTED_ADMIN_KEY-<unset>}}"
    echo "  env CONVEX_DEPLOYMENT=${{CONVEX_DEPLOYMENT-<unset>}}"
  fi
  if [[ "{name} $1" == "kubectl apply" && -f "$3/kustomization.yaml" ]]; then
    sed 's/^/  | /' "$3/kustomization.yaml"
  fi
}} >>"$STUB_LOG"
if [[ "{name} $*" == *"${{STUB_FAIL_ON:-<never>}}"* ]]; then exit 1; fi
"""


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """A bin directory of stand-in kubectl, npx and npm scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("kubectl", "npx", "npm"):
        path = bin_dir / name
        path.write_text(STUB.format(name=name))
        path.chmod(0o755)
    return bin_dir


def run_deploy(
    stubs: Path, env: Mapping[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = stubs.parent / "calls.log"
    log.unlink(missing_ok=True)
    full_env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "HOME": str(stubs.parent),
        "STUB_LOG": str(log),
        "CONVEX_DEPLOYMENT": "https://should-not-reach-the-cli.example",
        **env,
    }
    result = subprocess.run(
        ["bash", str(DEPLOY_SH), *args],
        env=full_env,
        cwd=stubs.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_deploy_script_is_valid_strict_bash() -> None:
    subprocess.run(["bash", "-n", str(DEPLOY_SH)], check=True, timeout=30)
    assert DEPLOY_SH.stat().st_mode & stat.S_IXUSR
    code = [ln for ln in DEPLOY_SH.read_text().splitlines() if ln and not ln.startswith("#")]
    assert code[0] == "set -euo pipefail"


def test_deploy_dry_run_prints_convex_deploy_before_the_rollout_and_runs_nothing(
    stubs: Path,
) -> None:
    result, calls = run_deploy(stubs, {"CONVEX_DEPLOY_KEY": "prod:dummy|key"}, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert calls == []  # nothing was executed
    out = result.stdout
    order = ["npx convex deploy", "get secret jangar-worker-secrets", "apply -k deploy/k8s"]
    order.append("rollout status deployment/jangar-worker")
    positions = [out.index(step) for step in order]
    assert positions == sorted(positions), out
    assert "prod:dummy|key" not in out  # secrets are never printed


def test_deploy_fails_clearly_when_no_convex_target_is_set(stubs: Path) -> None:
    result, calls = run_deploy(stubs, {}, "--dry-run")
    assert result.returncode == 2
    assert "CONVEX_DEPLOY_KEY" in result.stderr and "CONVEX_SELF_HOSTED_URL" in result.stderr
    assert result.stdout == "" and calls == []

    result, _ = run_deploy(stubs, {"CONVEX_SELF_HOSTED_URL": "http://convex:3210"}, "--dry-run")
    assert result.returncode == 2
    assert "CONVEX_SELF_HOSTED_ADMIN_KEY" in result.stderr


def test_deploy_refuses_unknown_arguments_and_unpinned_images(stubs: Path) -> None:
    result, _ = run_deploy(stubs, {"CONVEX_DEPLOY_KEY": "k"}, "--dryrun")
    assert result.returncode == 2 and "--dryrun" in result.stderr
    for image in ("ghcr.io/acme/jangar-worker:latest", "ghcr.io/acme/jangar-worker"):
        env = {"CONVEX_DEPLOY_KEY": "k", "JANGAR_IMAGE": image}
        result, calls = run_deploy(stubs, env, "--dry-run")
        assert result.returncode == 2 and "JANGAR_IMAGE" in result.stderr, image
        assert calls == []


def test_deploy_runs_convex_deploy_then_applies_and_waits_for_the_rollout(
    stubs: Path,
) -> None:
    env = {"CONVEX_SELF_HOSTED_URL": "http://convex:3210", "CONVEX_ADMIN_KEY": "admin|key"}
    result, calls = run_deploy(stubs, env)
    assert result.returncode == 0, result.stderr
    commands = [c for c in calls if not c.startswith("  ")]
    assert commands == [
        "npx convex deploy",
        "kubectl -n jangar get secret jangar-worker-secrets -o name",
        "kubectl apply -k deploy/k8s",
        "kubectl -n jangar rollout status deployment/jangar-worker --timeout=600s",
    ]
    # The admin key reaches the CLI under its own name; CONVEX_DEPLOYMENT does not.
    assert "  env CONVEX_SELF_HOSTED_ADMIN_KEY=admin|key" in calls
    assert "  env CONVEX_DEPLOYMENT=<unset>" in calls


def test_deploy_stops_before_kubernetes_when_convex_deploy_fails(stubs: Path) -> None:
    env = {"CONVEX_DEPLOY_KEY": "k", "STUB_FAIL_ON": "convex deploy"}
    result, calls = run_deploy(stubs, env)
    assert result.returncode != 0
    assert [c for c in calls if not c.startswith("  ")] == ["npx convex deploy"]


def test_deploy_stops_when_the_secret_is_missing(stubs: Path) -> None:
    env = {"CONVEX_DEPLOY_KEY": "k", "STUB_FAIL_ON": "get secret"}
    result, calls = run_deploy(stubs, env)
    assert result.returncode == 2
    assert "jangar-worker-secrets is missing" in result.stderr
    assert not any(c.startswith("kubectl apply") for c in calls)


def test_deploy_sets_the_image_through_a_temporary_overlay(stubs: Path) -> None:
    env = {"CONVEX_DEPLOY_KEY": "k", "JANGAR_IMAGE": "ghcr.io/acme/jangar-worker:1.2.3"}
    result, calls = run_deploy(stubs, env)
    assert result.returncode == 0, result.stderr
    [apply] = [c for c in calls if c.startswith("kubectl apply -k ")]
    overlay = apply.split()[-1]
    assert overlay.startswith("deploy/.overlay.")
    text = "\n".join(calls)
    assert "  |   - ../k8s" in text
    assert "  |     newName: ghcr.io/acme/jangar-worker" in text
    assert '  |     newTag: "1.2.3"' in text
    assert not (ROOT / overlay).exists()  # removed on exit

    env["JANGAR_IMAGE"] = "ghcr.io/acme/jangar-worker@sha256:" + "a" * 64
    result, calls = run_deploy(stubs, env)
    assert result.returncode == 0, result.stderr
    assert "  |     digest: sha256:" + "a" * 64 in calls
