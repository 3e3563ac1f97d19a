"""docker-compose.yml: the Compose Specification, the services' wiring, secrets, health checks."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.deploy.conftest import (
    AGENT_ENV,
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    DOCKERFILE,
    ONE_SHOT,
    ROOT,
    SERVICES_NEEDED,
    _Stub,
    agent_sees,
    container_ports,
    dockerfile_args,
    dockerfile_env,
    dockerfile_instructions,
    duration_seconds,
    env_dict,
    image_ref,
    load_compose,
    run_probe,
    settings_env_names,
    settings_from,
)
from worker.runtime.health import HealthServer

# --- docker-compose.yml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.Draft7Validator:
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(f"{COMPOSE_SCHEMA} is missing: run `npm ci` (dclint is a devDependency)")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert schema.get("title") == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator: jsonschema.Draft7Validator, doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_compose_file_matches_the_compose_specification(
    compose_validator: jsonschema.Draft7Validator,
) -> None:
    # Compose validates after interpolation; the raw file must be valid as well.
    assert schema_errors(compose_validator, load_compose()) == []
    assert schema_errors(compose_validator, load_compose({})) == []
    assert schema_errors(compose_validator, load_compose({"CONVEX_ADMIN_KEY": "k"})) == []


def test_compose_schema_check_catches_mistakes(
    compose_validator: jsonschema.Draft7Validator,
) -> None:
    broken = copy.deepcopy(load_compose({}))
    broken["services"]["worker"]["helthcheck"] = broken["services"]["worker"].pop("healthcheck")
    broken["services"]["worker"]["depends_on"]["temporal"]["condition"] = "service_ready"
    errors = schema_errors(compose_validator, broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any("service_ready" in e for e in errors), errors


def test_compose_file_has_no_dclint_errors() -> None:
    """dclint's error rules (unbound port interfaces, build+image...); its style warnings pass."""
    cli = ROOT / "node_modules" / "dclint" / "bin" / "dclint.cjs"
    if not cli.is_file():
        pytest.fail(f"{cli} is missing: run `npm ci` (dclint is a devDependency)")
    result = subprocess.run(
        ["node", str(cli), str(COMPOSE_FILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_has_every_service_the_worker_needs() -> None:
    services = load_compose({})["services"]
    assert set(services) >= SERVICES_NEEDED
    assert services["worker"]["build"]["context"] == "."
    assert (ROOT / services["worker"]["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_worker_reaches_temporal_and_convex_by_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = load_compose({"CONVEX_ADMIN_KEY": "admin-key"})["services"]
    env = env_dict(services["worker"])

    host, port = env["TEMPORAL_ADDRESS"].rsplit(":", 1)
    assert host == "temporal"
    temporal_cmd = services["temporal"]["command"]
    assert temporal_cmd[temporal_cmd.index("--port") + 1] == port
    assert temporal_cmd[temporal_cmd.index("--ip") + 1] == "0.0.0.0"
    assert int(port) in container_ports(services["temporal"])

    convex = urlsplit(env["CONVEX_SELF_HOSTED_URL"])
    assert (convex.scheme, convex.hostname, convex.port) == ("http", "convex-backend", 3210)
    assert 3210 in container_ports(services["convex-backend"])
    assert "3210/version" in " ".join(services["convex-backend"]["healthcheck"]["test"])

    # The worker's real settings accept this environment and resolve to those services.
    settings = settings_from(env, monkeypatch)
    assert settings.temporal_address == "temporal:7233"
    assert settings.resolved_convex_url == "http://convex-backend:3210"
    assert settings.convex_key is not None
    assert settings.convex_key.get_secret_value() == "admin-key"
    assert settings.temporal_task_queue == "jangar"
    assert str(settings.data_dir) == dockerfile_env()["JANGAR_DATA_DIR"]


def test_worker_env_names_are_ones_the_worker_reads() -> None:
    env = env_dict(load_compose({})["services"]["worker"])
    unknown = set(env) - settings_env_names() - AGENT_ENV
    assert not unknown, f"not read by worker/settings.py: {sorted(unknown)}"


def test_compose_agent_gets_model_keys_and_no_worker_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        n: "s" for n in ("CONVEX_ADMIN_KEY", "GITHUB_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY")
    }
    env = {**env_dict(load_compose(secrets)["services"]["worker"]), **dockerfile_env()}
    seen = agent_sees(settings_from(env, monkeypatch), env)
    assert seen >= AGENT_ENV and "CODEX_HOME" in seen
    assert not seen & {"CONVEX_ADMIN_KEY", "CONVEX_SELF_HOSTED_URL", "GITHUB_TOKEN"}


def test_worker_secrets_come_from_the_environment_not_the_file() -> None:
    raw_env = env_dict(load_compose()["services"]["worker"])
    for name in ("CONVEX_ADMIN_KEY", "GITHUB_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY"):
        assert re.fullmatch(r"\$\{" + name + r"(:?-)?\}", raw_env[name]), raw_env[name]


def test_worker_starts_after_its_dependencies_are_ready() -> None:
    services = load_compose({})["services"]
    assert services["worker"]["depends_on"] == {
        "temporal": {"condition": "service_healthy"},
        "convex-backend": {"condition": "service_healthy"},
        "convex-deploy": {"condition": "service_completed_successfully"},
    }
    assert services["convex-deploy"]["depends_on"] == {
        "convex-backend": {"condition": "service_healthy"}
    }
    assert services["convex-dashboard"]["depends_on"] == {
        "convex-backend": {"condition": "service_healthy"}
    }


def test_convex_deploy_job_pushes_convex_to_the_backend() -> None:
    job = load_compose({"CONVEX_ADMIN_KEY": "admin-key"})["services"]["convex-deploy"]
    env = env_dict(job)
    url = urlsplit(env["CONVEX_SELF_HOSTED_URL"])
    assert (url.hostname, url.port) == ("convex-backend", 3210)
    assert env["CONVEX_SELF_HOSTED_ADMIN_KEY"] == "admin-key"
    assert "CONVEX_DEPLOYMENT" not in env  # the CLI refuses it next to a self-hosted URL
    script = "\n".join(job["command"]) if isinstance(job["command"], list) else job["command"]
    assert "npx convex deploy" in script
    assert script.index("npm ci") < script.index("npx convex deploy")
    assert "./convex:/src/convex:ro" in job["volumes"]
    assert job["restart"] == ONE_SHOT
    assert job.get("user") not in (None, "root", "0")


def test_convex_deploy_job_fails_clearly_without_an_admin_key(tmp_path: Path) -> None:
    job = load_compose({})["services"]["convex-deploy"]
    script = job["command"][0]
    entrypoint = job["entrypoint"]
    assert entrypoint[:1] == ["bash"] and entrypoint[-1] == "-c"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CONVEX_SELF_HOSTED_ADMIN_KEY": ""}
    result = subprocess.run(
        [*entrypoint, script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "CONVEX_ADMIN_KEY is not set" in result.stderr
    assert "generate_admin_key.sh" in result.stderr


def test_long_running_services_have_health_checks() -> None:
    for name, service in load_compose({})["services"].items():
        if service.get("restart") == ONE_SHOT:
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), name
        assert check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "start_period"):
            assert duration_seconds(check[key]) > 0, (name, key)


def test_compose_images_are_pinned() -> None:
    assert ":latest" not in COMPOSE_FILE.read_text()
    services = load_compose({})["services"]
    for name, service in services.items():
        image = service.get("image")
        assert image or "build" in service, f"{name}: no image"
        if image is None:
            continue
        _, tag, digest = image_ref(image)
        assert tag or digest, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" not in service:
            assert digest or re.search(r"\d", tag or ""), f"{name}: {image} is not a version"
    # The Convex images are published per commit: the tag is the full commit hash.
    for name in ("convex-backend", "convex-dashboard"):
        repo, tag, _ = image_ref(services[name]["image"])
        assert repo.startswith("ghcr.io/get-convex/convex-")
        assert re.fullmatch(r"[0-9a-f]{40}", tag or ""), tag
    assert re.fullmatch(r"\d+\.\d+\.\d+", image_ref(services["temporal"]["image"])[1] or "")
    # One Node version across the repo: the deploy job's image is the Dockerfile's Node image.
    assert services["convex-deploy"]["image"] == dockerfile_args()["NODE_IMAGE"]


def test_worker_gets_longer_to_stop_than_its_graceful_shutdown() -> None:
    worker = load_compose({})["services"]["worker"]
    grace = float(env_dict(worker)["SHUTDOWN_GRACE_SECONDS"])
    assert duration_seconds(worker["stop_grace_period"]) >= grace + 10


async def test_health_check_commands_probe_livez(
    stub_health_server: tuple[int, type[_Stub]],
) -> None:
    """Run the compose and Dockerfile health checks for real: healthy against the worker's own
    HealthServer, unhealthy against a stand-in answering 503 (the real /livez never does)."""
    port, handler = stub_health_server
    handler.status = 503
    compose_test = load_compose({})["services"]["worker"]["healthcheck"]["test"]
    assert compose_test[:3] == ["CMD", "python", "-c"]
    [docker_check] = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    docker_cmd = json.loads(docker_check.split(" CMD ", 1)[1])
    assert docker_cmd[:2] == ["python", "-c"]
    health = HealthServer({}, host="127.0.0.1", port=0)
    await health.start()
    try:
        for code in (compose_test[3], docker_cmd[2]):
            assert "127.0.0.1" in code and "/livez" in code and "'8080'" in code
            assert await asyncio.to_thread(run_probe, code, health.port) == 0
            assert await asyncio.to_thread(run_probe, code, port) != 0
    finally:
        await health.stop()
    # Nothing listening: unhealthy.
    with ThreadingHTTPServer(("127.0.0.1", 0), _Stub) as idle:
        free_port = idle.server_address[1]
    assert run_probe(compose_test[3], free_port) != 0


def test_compose_worker_gets_what_the_job_sandbox_needs_and_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bwrap needs user namespaces and mounts in them (Docker's default seccomp and AppArmor
    profiles forbid both) and an unmasked /proc; nothing else is granted."""
    worker = load_compose({})["services"]["worker"]
    assert set(worker["security_opt"]) == {
        "seccomp=unconfined",
        "apparmor=unconfined",
        "systempaths=unconfined",
        "no-new-privileges:true",
    }
    assert worker.get("privileged") is not True
    assert "cap_add" not in worker and worker["cap_drop"] == ["ALL"]
    assert not worker.get("init")  # the image's entrypoint is already tini
    env = env_dict(load_compose({"CONVEX_ADMIN_KEY": "k"})["services"]["worker"])
    assert settings_from(env, monkeypatch).sandbox == "bwrap"
