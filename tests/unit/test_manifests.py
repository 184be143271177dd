"""The Kubernetes manifests (kustomize base and local overlay) validate against Kubernetes'
schemas (kubernetes-validate, strict) and the operators' CRD schemas (deploy/k8s/crds), and
say what the deployment needs; compose.yaml passes `docker-compose config`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from deploy import definitions
from shared import roles
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

K8S = PROJECT_ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "local": K8S / "overlays" / "local"}
CRDS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): K8S
    / "crds"
    / "rabbitmq.com_rabbitmqclusters.yaml",
    ("postgresql.cnpg.io/v1", "Cluster"): K8S / "crds" / "postgresql.cnpg.io_clusters.yaml",
}
#: The oldest Kubernetes release the manifests must apply to.
KUBERNETES_VERSION = "1.28"
APP_KINDS = ("gateway", "inventory", "orders", "payments")


@cache
def rendered(name: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of one kustomization: the documents `kubectl apply -k` sends."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is needed to render deploy/k8s"
    out = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it: unknown fields are errors
    unless the schema keeps them (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(CRDS[(api_version, kind)].read_text())
    version = api_version.split("/")[1]
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = _strict(served["schema"]["openAPIV3Schema"])
    # metadata is the API server's (ObjectMeta), not the CRD's
    schema["properties"]["metadata"] = {"type": "object"}
    return schema  # type: ignore[no-any-return]


def by_kind(name: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(name) if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_document_validates_against_kubernetes_or_its_operators_schema(name: str) -> None:
    docs = rendered(name)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRDS:
            jsonschema.Draft202012Validator(crd_schema(*key)).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_a_misspelt_field_is_caught(name: str) -> None:
    for doc in (d for d in rendered(name) if "spec" in d):
        key = (doc["apiVersion"], doc["kind"])
        wrong = json.loads(json.dumps(doc))
        wrong["spec"]["replica"] = 3
        with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
            if key in CRDS:
                jsonschema.Draft202012Validator(crd_schema(*key)).validate(wrong)
            else:
                kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_three_broker_nodes_three_database_instances_and_the_app_on_the_primary(name: str) -> None:
    (rabbit,) = by_kind(name, "RabbitmqCluster").values()
    (postgres,) = by_kind(name, "Cluster").values()
    assert rabbit["spec"]["replicas"] == 3
    assert "{quorum_cluster_size, 3}" in rabbit["spec"]["rabbitmq"]["advancedConfig"]
    assert postgres["spec"]["instances"] == 3
    config = by_kind(name, "ConfigMap")["flashsale-config"]["data"]
    assert config["DATABASE_HOST"] == f"{postgres['metadata']['name']}-rw"
    assert config["AMQP_HOST"] == rabbit["metadata"]["name"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_each_process_logs_in_with_its_own_broker_user_and_the_application_role(name: str) -> None:
    deployments = by_kind(name, "Deployment")
    assert set(deployments) == {f"flashsale-{kind}" for kind in APP_KINDS}
    for kind in APP_KINDS:
        (container,) = containers(deployments[f"flashsale-{kind}"])
        env = env_of(container)
        assert env["FLASHSALE_AMQP_URL"].startswith(f"amqp://{roles.amqp_user(kind)}:"), kind
        assert env["FLASHSALE_DATABASE_URL"].startswith(f"postgresql+asyncpg://{roles.DB_APP}:")
    job = by_kind(name, "Job")["flashsale-migrate"]
    (migrate,) = containers(job)
    assert env_of(migrate)["FLASHSALE_DATABASE_URL"].startswith(
        f"postgresql+asyncpg://{roles.DB_OWNER}:"
    )
    (provision,) = job["spec"]["template"]["spec"]["initContainers"]
    assert provision["command"] == ["python", "-m", "shared.roles"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_process_has_probes_standbys_and_a_disruption_budget(name: str) -> None:
    deployments = by_kind(name, "Deployment")
    budgets = by_kind(name, "PodDisruptionBudget")
    for deployment_name, deployment in deployments.items():
        for container in containers(deployment):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, (deployment_name, probe)
        assert deployment_name in budgets
        selector = budgets[deployment_name]["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    for worker in ("inventory", "orders", "payments"):
        assert deployments[f"flashsale-{worker}"]["spec"]["replicas"] >= 2, worker
    (hpa,) = by_kind(name, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "flashsale-gateway"
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployments["flashsale-gateway"]["spec"]  # the HPA's to set


def test_the_deployment_settings_are_those_the_rabbitmq_definitions_were_made_for() -> None:
    config = by_kind("base", "ConfigMap")["flashsale-config"]["data"]
    settings = definitions.default_settings()
    assert int(config["FLASHSALE_PARTITIONS"]) == settings.partitions
    assert int(config["FLASHSALE_HOLD_TTL_SECONDS"]) == settings.hold_ttl_seconds
    assert int(config["FLASHSALE_PAYMENT_WINDOW_SECONDS"]) == settings.payment_window_seconds
    assert config["FLASHSALE_ENV"] == "production"


def test_the_local_overlay_brings_every_secret_the_base_names() -> None:
    def secret_names(node: Any) -> set[str]:
        """Names under secretKeyRef, secretRef and CloudNativePG's bootstrap secret."""
        found: set[str] = set()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("secretKeyRef", "secretRef", "secret") and "name" in value:
                    found.add(value["name"])
                found |= secret_names(value)
        elif isinstance(node, list | tuple):
            for value in node:
                found |= secret_names(value)
        return found

    operators = {"flashsale-rabbitmq-default-user", "flashsale-postgres-superuser"}
    needed = secret_names(rendered("base")) - operators
    assert needed == {
        "flashsale-secrets",
        "flashsale-db-owner",
        "flashsale-db-app",
        "flashsale-broker-users",
    }
    assert needed <= set(by_kind("local", "Secret"))


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian package docker-compose) is needed"
    example = PROJECT_ROOT / "deploy" / "compose.env.example"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASHSALE_", "POSTGRES_"))}
    for line in example.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    result = subprocess.run(
        [compose, "--project-directory", str(PROJECT_ROOT), "-f", "compose.yaml", "config", "-q"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
