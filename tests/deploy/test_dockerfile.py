"""Dockerfile and .dockerignore: pinned bases, a non-root worker, what the image holds."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import (
    DOCKERFILE,
    ROOT,
    by_kind,
    dockerfile_args,
    dockerfile_env,
    dockerfile_instructions,
    image_ref,
    worker_container,
)
from worker.settings import Settings

# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_base_images_are_pinned() -> None:
    text = DOCKERFILE.read_text()
    assert ":latest" not in text
    args = dockerfile_args()
    stages: set[str] = set()
    bases = []
    for word, rest in dockerfile_instructions():
        if word != "FROM":
            continue
        parts = rest.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], parts[0])
        if image not in stages:
            bases.append(image)
        if len(parts) == 3 and parts[1].upper() == "AS":
            stages.add(parts[2])
    assert bases, "no FROM"
    for image in bases:
        _, tag, digest = image_ref(image)
        assert digest or re.match(r"\d+\.\d+\.\d+", tag or ""), f"{image} is not pinned"
    assert args["PYTHON_IMAGE"].startswith("python:3.11.") and "slim" in args["PYTHON_IMAGE"]
    assert args["NODE_IMAGE"].startswith("node:")


def test_dockerfile_runs_jangar_worker_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0")
    assert uid == str(
        by_kind("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    )
    [entrypoint] = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    [cmd] = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert entrypoint + cmd == ["tini", "--", "jangar", "worker"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^jangar = "worker\.cli:main"$', pyproject, re.M)


def test_dockerfile_runs_the_worker_under_an_init_that_reaps() -> None:
    """tini is PID 1: it forwards signals to the worker and reaps orphans, so the worker is never
    PID 1 (which ignores SIGTERM without a handler and inherits every zombie)."""
    runs = " ".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    assert re.search(r"apt-get install [^&]*\btini\b", runs)
    [entrypoint] = [
        json.loads(rest) for word, rest in dockerfile_instructions() if word == "ENTRYPOINT"
    ]
    assert entrypoint[:2] == ["tini", "--"], "the worker must not be PID 1"
    assert "tini --version" in runs  # the build fails if tini is not there


def test_dockerfile_installs_bubblewrap_for_the_job_sandbox() -> None:
    """The worker refuses to run jobs without a working sandbox unless JANGAR_SANDBOX=off: the
    image must bring bwrap (Debian's, not setuid: it relies on user namespaces)."""
    runs = " ".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runs)
    assert "bwrap --version" in runs
    assert "chmod u+s" not in runs and "chmod 4755" not in runs  # no setuid bwrap
    env = dockerfile_env()
    assert env.get("JANGAR_SANDBOX", "bwrap") == "bwrap"  # never baked off
    assert "user namespace" in DOCKERFILE.read_text()  # the requirement is stated where built


def test_dockerfile_installs_git_the_codex_cli_and_the_project() -> None:
    runs = " ".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    assert re.search(r"apt-get install [^&]*\bgit\b", runs)
    assert re.search(r"pip install \.(\s|$)", runs)
    assert '"@openai/codex@${CODEX_VERSION}"' in runs
    assert re.fullmatch(r"\d+\.\d+\.\d+", dockerfile_args()["CODEX_VERSION"])


def test_dockerfile_ports_and_paths_match_the_settings() -> None:
    exposed = {
        int(p) for word, rest in dockerfile_instructions() if word == "EXPOSE" for p in rest.split()
    }
    defaults = Settings.model_fields
    assert exposed == {defaults["health_port"].default, defaults["metrics_port"].default}
    env = dockerfile_env()
    assert env["HEALTH_PORT"] == "8080" and env["METRICS_PORT"] == "9464"
    # With a read-only root filesystem every path the worker or Codex writes is a mount.
    mounts = {m["mountPath"] for m in worker_container()["volumeMounts"]}
    for name in ("JANGAR_DATA_DIR", "CODEX_HOME", "HOME"):
        assert env[name] in mounts, name


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    assert {".env", ".git", ".venv/", "node_modules/", ".jangar/"} <= ignored
    # ...but nothing the build copies from the context.
    for word, rest in dockerfile_instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not {source, source.rstrip("/") + "/"} & ignored, source
