"""What the deployment-file tests share: the files' paths, parsers for each, the worker's
setting names, and a stand-in health server for probe commands.

No Docker engine and no cluster run here, so these tests check what can be checked offline:
each file against its published schema (the Compose Specification as shipped in the npm package
dclint; Kubernetes' OpenAPI-derived JSON schemas as shipped in the PyPI package
kubernetes-validate), and the wiring between the files and the worker's own settings, which is
where a deployment breaks quietly: a variable name the worker never reads, a probe on a path it
does not serve, a grace period shorter than its drain.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv
import pytest
import yaml
from pydantic import AliasChoices

from activities.process import child_env
from tests.standins.local_http import serve, stop_serving
from worker.runtime.temporal_client import TEMPORAL_ENV_NAMES
from worker.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
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
    """Every environment variable the worker reads: worker/settings.py (field aliases, else
    FIELD_NAME) and the Temporal SDK's connection names (worker/runtime/temporal_client.py)."""
    names: set[str] = set(TEMPORAL_ENV_NAMES)
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
    server, thread = serve(handler)
    try:
        yield server.server_address[1], handler
    finally:
        stop_serving(server, thread)


def run_probe(code: str, port: int) -> int:
    env = {**os.environ, "HEALTH_PORT": str(port)}
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=20).returncode


def agent_sees(settings: Settings, env: Mapping[str, str]) -> set[str]:
    """Names of ``env`` that reach the Codex CLI, through the worker's real allow-list."""
    return set(child_env(allow=settings.agent_env_allow, source=env))
