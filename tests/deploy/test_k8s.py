"""deploy/k8s/: Kubernetes schemas, probes, grace periods, secrets, KEDA scaling."""

from __future__ import annotations

import copy
import re

import kubernetes_validate.utils as kv
import pytest
import yaml

from tests.deploy.conftest import (
    AGENT_ENV,
    K8S_DIR,
    K8S_VERSIONS,
    KEDA_TEMPORAL_AUTH_PARAMS,
    KEDA_TEMPORAL_FIELDS,
    ROOT,
    agent_sees,
    by_kind,
    configmap_data,
    dockerfile_env,
    k8s_docs,
    secret_template,
    settings_env_names,
    settings_from,
    worker_container,
)
from worker.settings import Settings

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


def test_deployment_grants_the_job_sandbox_exactly_what_bubblewrap_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bwrap needs user namespaces and mounts in them (seccomp, AppArmor) and a fresh /proc
    (an unmasked one, which Kubernetes allows only in a pod with its own user namespace)."""
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    security = worker_container()["securityContext"]
    assert spec["hostUsers"] is False
    assert security["procMount"] == "Unmasked"
    assert security["seccompProfile"]["type"] in ("Unconfined", "Localhost")
    assert security["appArmorProfile"]["type"] in ("Unconfined", "Localhost")
    # ...and nothing more: no privileged mode, no capability, no escalation, no host namespace.
    assert security.get("privileged") is not True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert not any(spec.get(name) for name in ("hostPID", "hostIPC", "hostNetwork"))
    assert not [volume for volume in spec["volumes"] if "hostPath" in volume]
    # The worker runs every job sandboxed (it probes bwrap at start and refuses without it).
    assert settings_from(configmap_data(), monkeypatch).sandbox == "bwrap"


def test_deploy_readme_says_what_the_sandbox_needs_guarantees_and_does_not() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    for needed in ("hostUsers: false", "procMount: Unmasked", "appArmorProfile", "seccompProfile"):
        assert needed in readme, needed
    for said in ("user namespaces", "RuntimeClass", "JANGAR_SANDBOX=off", "does not guarantee"):
        assert said in readme, said
