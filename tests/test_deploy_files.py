"""The deployment files: docker-compose.yml, Dockerfile, deploy/k8s/ and deploy/deploy.sh.

No Docker engine and no cluster run here, so these tests check what can be checked offline:
each file against its published schema (the Compose Specification as shipped in the npm package
dclint; Kubernetes' OpenAPI-derived JSON schemas as shipped in the PyPI package
kubernetes-validate), and the wiring between the files and the worker's own settings, which is
where a deployment breaks quietly: a variable name the worker never reads, a probe on a path it
does not serve, a grace period shorter than its drain. deploy.sh runs for real against
stand-in kubectl/npx/npm scripts that only record how they were called.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate.utils as kv
import pytest
import yaml
from pydantic import AliasChoices

from activities.process import child_env
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "k8s"
DEPLOY_SH = ROOT / "deploy" / "deploy.sh"
# The Compose Specification's JSON schema, as the npm devDependency dclint ships it
# (schemas/compose.schema.json, a copy of compose-spec/compose-spec's schema/compose-spec.json).
COMPOSE_SCHEMA = ROOT / "node_modules" / "dclint" / "schemas" / "compose.schema.json"
# Kubernetes versions the manifests must be valid for: an older supported minor and the newest
# that the installed kubernetes-validate knows.
K8S_VERSIONS = ("1.30", kv.latest_version())

SERVICES_NEEDED = {"temporal", "convex-backend", "convex-dashboard", "convex-deploy", "worker"}
# Read by the Codex CLI that the worker starts (not by worker/settings.py).
AGENT_ENV = {"OPENAI_API_KEY", "CODEX_API_KEY"}
# Every metadata field of KEDA's temporal scaler (kedacore/keda pkg/scalers/temporal_scaler.go,
# temporalMetadata): a misspelt key is silently ignored by KEDA, so it is refused here.
KEDA_TEMPORAL_FIELDS = {
    "endpoint",
    "endpointFromEnv",
    "namespace",
    "namespaceFromEnv",
    "activationTargetQueueSize",
    "targetQueueSize",
    "taskQueue",
    "taskQueueFromEnv",
    "queueTypes",
    "buildId",
    "workerDeploymentName",
    "workerDeploymentBuildId",
    "selectAllActive",
    "selectUnversioned",
    "minConnectTimeout",
    "unsafeSsl",
    "tlsServerName",
}
KEDA_TEMPORAL_AUTH_PARAMS = {"apiKey", "cert", "key", "keyPassword", "ca"}
ONE_SHOT = "no"  # compose `restart` value of a job that runs once and exits


# --- helpers ---------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every environment variable worker/settings.py reads (field aliases, else FIELD_NAME)."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(name.upper())
    return names


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Load the real Settings from exactly ``env`` (nothing leaks in from the test machine)."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, $$)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        unset_or_empty = not current if op and op.startswith(":") else current is None
        if op in (":-", "-"):
            return arg if unset_or_empty else str(current)
        if op in (":?", "?"):
            if unset_or_empty:
                raise KeyError(f"{name}: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return current or ""

    return _VAR.sub(one, value)


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(raw, dict)
    return raw if env is None else interpolate(raw, env)


def env_dict(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


def container_ports(service: Mapping[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def image_ref(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest or None


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    out = []
    for line in logical:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile_args() -> dict[str, str]:
    args = {}
    for word, rest in dockerfile_instructions():
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    return args


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", rest):
                env[key] = value
    return env


def k8s_docs() -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/k8s, keyed by file name."""
    docs = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert isinstance(doc, dict), path
        docs[path.name] = doc
    return docs


def by_kind(kind: str, *, include_template: bool = False) -> dict[str, Any]:
    found = [
        doc
        for name, doc in k8s_docs().items()
        if doc.get("kind") == kind and (include_template or name != "secret.example.yaml")
    ]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def worker_container() -> dict[str, Any]:
    containers = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    container: dict[str, Any] = containers[0]
    return container


def configmap_data() -> dict[str, str]:
    data: dict[str, str] = by_kind("ConfigMap")["data"]
    return data


def secret_template() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((K8S_DIR / "secret.example.yaml").read_text())
    return doc


class _Stub(BaseHTTPRequestHandler):
    """A stand-in health server: /livez answers with the status the test chose."""

    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/livez" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub_health_server() -> Iterator[tuple[int, type[_Stub]]]:
    handler = type("Handler", (_Stub,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_probe(code: str, port: int) -> int:
    env = {**os.environ, "HEALTH_PORT": str(port)}
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=20).returncode


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


def agent_sees(settings: Settings, env: Mapping[str, str]) -> set[str]:
    """Names of ``env`` that reach the Codex CLI, through the worker's real allow-list."""
    return set(child_env(allow=settings.agent_env_allow, source=env))


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


def test_health_check_commands_probe_livez(
    stub_health_server: tuple[int, type[_Stub]],
) -> None:
    """Run the compose and Dockerfile health checks for real against a stand-in server."""
    port, handler = stub_health_server
    compose_test = load_compose({})["services"]["worker"]["healthcheck"]["test"]
    assert compose_test[:3] == ["CMD", "python", "-c"]
    [docker_check] = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    docker_cmd = json.loads(docker_check.split(" CMD ", 1)[1])
    assert docker_cmd[:2] == ["python", "-c"]
    for code in (compose_test[3], docker_cmd[2]):
        assert "127.0.0.1" in code and "/livez" in code and "'8080'" in code
        handler.status = 200
        assert run_probe(code, port) == 0
        handler.status = 503
        assert run_probe(code, port) != 0
    # Nothing listening: unhealthy.
    with ThreadingHTTPServer(("127.0.0.1", 0), _Stub) as idle:
        free_port = idle.server_address[1]
    assert run_probe(compose_test[3], free_port) != 0


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
    assert entrypoint + cmd == ["jangar", "worker"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^jangar = "worker\.cli:main"$', pyproject, re.M)


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


# --- deploy/k8s ------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S_DIR / resource).is_file(), resource
    manifests = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    # Listing the template would overwrite the real Secret with blanks on every apply.
    assert set(resources) == manifests - {"secret.example.yaml"}
    assert kustomization["namespace"]
    [image] = kustomization["images"]
    assert image["name"] == worker_container()["image"]
    version = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version and image["newTag"] == version[1]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_manifests_match_the_kubernetes_schemas(version: str) -> None:
    docs = k8s_docs()
    checked = set()
    for doc in docs.values():
        if doc["apiVersion"].startswith(("keda.sh/", "kustomize.config.k8s.io/")):
            continue
        kv.validate(doc, version, strict=True)
        checked.add(doc["kind"])
    assert checked == {"Deployment", "Service", "ConfigMap", "Secret"}


def test_kubernetes_schema_check_catches_mistakes() -> None:
    doc = copy.deepcopy(by_kind("Deployment"))
    doc["spec"]["template"]["spec"]["terminationGracePeriod"] = 75
    with pytest.raises(kv.ValidationError, match="terminationGracePeriod"):
        kv.validate(doc, K8S_VERSIONS[0], strict=True)
    doc = copy.deepcopy(by_kind("Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = [2]
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, K8S_VERSIONS[0], strict=True)


def test_deployment_probes_hit_the_worker_health_endpoints() -> None:
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = configmap_data()
    assert ports == {"health": int(config["HEALTH_PORT"]), "metrics": int(config["METRICS_PORT"])}
    expected = {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        port = ports.get(get["port"], get["port"])
        assert port == 8080, probe


def test_termination_grace_outlasts_the_worker_graceful_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    grace = float(configmap_data()["SHUTDOWN_GRACE_SECONDS"])
    assert grace > Settings.model_fields["shutdown_grace_seconds"].default  # raised from 30 s
    assert spec["terminationGracePeriodSeconds"] >= grace + 10
    # The value the worker really uses is the ConfigMap's.
    settings = settings_from(configmap_data(), monkeypatch)
    assert settings.shutdown_grace_seconds == grace


def test_deployment_runs_non_root_with_a_read_only_root_filesystem() -> None:
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    container = worker_container()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    data_dir = configmap_data()["JANGAR_DATA_DIR"]
    assert "emptyDir" in volumes[mounts[data_dir]]
    assert "/tmp" in mounts
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind


def test_deployment_env_names_are_ones_the_worker_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    container = worker_container()
    known = settings_env_names()
    config = configmap_data()
    assert not set(config) - known, sorted(set(config) - known)
    env_names = {e["name"] for e in container["env"]}
    assert not env_names - known - AGENT_ENV, sorted(env_names - known - AGENT_ENV)
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == [
        by_kind("ConfigMap")["metadata"]["name"]
    ]
    # The ConfigMap loads into the real settings.
    settings = settings_from(config, monkeypatch)
    assert settings.temporal_task_queue == "jangar"
    assert settings.resolved_convex_url == config["CONVEX_SELF_HOSTED_URL"]


def test_secrets_come_from_the_secret_and_the_template_holds_no_values() -> None:
    template = secret_template()
    assert template["kind"] == "Secret" and template["type"] == "Opaque"
    assert all(value == "" for value in template["stringData"].values())
    assert "data" not in template
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in worker_container()["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    required = {"CONVEX_DEPLOY_KEY", "TEMPORAL_API_KEY", "GITHUB_TOKEN", "OPENAI_API_KEY"}
    assert required <= set(refs)
    for name, ref in refs.items():
        assert ref["name"] == template["metadata"]["name"], name
        assert ref["key"] in template["stringData"], name
    # No secret value is written anywhere in the ConfigMap.
    assert not {n for n in configmap_data() if n.endswith(("_KEY", "_TOKEN"))}


def test_k8s_agent_gets_model_keys_and_no_worker_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**dockerfile_env(), **configmap_data()}
    env.update({e["name"]: "s" for e in worker_container()["env"]})
    seen = agent_sees(settings_from(env, monkeypatch), env)
    assert seen >= AGENT_ENV and "CODEX_HOME" in seen
    worker_only = {"CONVEX_DEPLOY_KEY", "CONVEX_ADMIN_KEY", "TEMPORAL_API_KEY", "GITHUB_TOKEN"}
    assert not seen & worker_only


def test_metrics_service_selects_the_worker_pods() -> None:
    service = by_kind("Service")
    template = by_kind("Deployment")["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in worker_container()["ports"]}
    metrics_port = configmap_data()["METRICS_PORT"]
    assert str(port["port"]) == metrics_port
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_keda_scales_the_deployment_on_the_jangar_task_queue() -> None:
    scaled = by_kind("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    deployment = by_kind("Deployment")
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    # The dispatcher lives in the worker: zero replicas would never dispatch, never scale up.
    assert spec["minReplicaCount"] >= 1
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "temporal"
    meta = trigger["metadata"]
    assert set(meta) <= KEDA_TEMPORAL_FIELDS, sorted(set(meta) - KEDA_TEMPORAL_FIELDS)
    assert all(isinstance(v, str) for v in meta.values())  # KEDA metadata is string-valued
    config = configmap_data()
    assert meta["taskQueue"] == "jangar" == config["TEMPORAL_TASK_QUEUE"]
    assert meta["taskQueue"] == Settings.model_fields["temporal_task_queue"].default
    assert meta["endpoint"] == config["TEMPORAL_ADDRESS"]
    assert meta["namespace"] == config["TEMPORAL_NAMESPACE"]
    assert int(meta["targetQueueSize"]) > 0
    assert int(meta.get("activationTargetQueueSize", "0")) >= 0


def test_keda_authenticates_with_the_worker_temporal_api_key() -> None:
    auth = by_kind("TriggerAuthentication")
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    [trigger] = by_kind("ScaledObject")["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    template = secret_template()
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["parameter"] in KEDA_TEMPORAL_AUTH_PARAMS
        assert ref["name"] == template["metadata"]["name"]
        assert ref["key"] in template["stringData"]
    assert {r["parameter"]: r["key"] for r in auth["spec"]["secretTargetRef"]} == {
        "apiKey": "TEMPORAL_API_KEY"
    }


def test_no_moving_image_tags_in_the_manifests() -> None:
    for path in K8S_DIR.glob("*.yaml"):
        assert ":latest" not in path.read_text(), path.name


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
