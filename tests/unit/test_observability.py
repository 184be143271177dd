"""deploy/observability: the alert rules and the Prometheus config pass promtool (and the
rules' own unit tests), every metric the rules and the dashboard name is one the code or
FastStream exports (RabbitMQ's: tests/integration/test_rabbitmq_metrics.py), the dashboard is
a well-formed Grafana dashboard valid against Grafana's own schema, the compose profile
provisions them, and the workers' probes use the endpoints the workers serve."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY, CollectorRegistry

import shared.metrics  # noqa: F401  (registers the product's series)
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

HERE = PROJECT_ROOT / "deploy" / "observability"
DASHBOARD = HERE / "grafana" / "dashboards" / "flashsale.json"
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool (Debian package prometheus) is needed"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        if not m.group(2) and m.group(1) not in _KEYWORDS:
            names.add(m.group(1))
    return names


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((HERE / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def exported(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry's metrics can have, with or without samples yet."""
    names = set()
    for family in registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_the_alert_rules_and_the_prometheus_config_pass_promtool(tmp_path: Path) -> None:
    checked = promtool("check", "rules", str(HERE / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(HERE / "alerts.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # the container's path of the rules, as the compose profile mounts them
    config = (HERE / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/alerts.yml", "a.yml"))
    shutil.copy(HERE / "alerts.yml", tmp_path / "a.yml")
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_of_the_rules_and_the_dashboard_is_exported() -> None:
    faststream = CollectorRegistry()
    RabbitPrometheusMiddleware(registry=faststream, app_name="inventory")
    ours = exported(REGISTRY) | exported(faststream) | {"up"}  # `up`: Prometheus's own
    used = set().union(*map(metric_names, rule_expressions() + dashboard_expressions()))
    assert {"flashsale_audit_products_violating", "rabbitmq_detailed_queue_consumers"} <= used
    missing = {n for n in used - ours if not n.startswith("rabbitmq_")}
    assert not missing, f"not exported by the code or FastStream: {sorted(missing)}"


def test_the_expression_reader_finds_the_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, command) (rate(a_bucket{x=~"p\\\\.q"}[5m]))) '
        "> on(job) group_left(instance) b and time() - max(c) > 300"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_the_dashboard_is_a_well_formed_grafana_dashboard() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int)
    (variable,) = d["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["type"] in {"timeseries", "stat", "bargauge"}, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        for step in p["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])[1:]:
            assert isinstance(step["value"], int | float), p["title"]


def grafana_schema() -> dict[str, Any]:
    """Grafana 11.2's dashboard schema (grafana/schema/README.md says whence), with the SDK's
    later correction: the first threshold step's minus infinity is written as null."""
    schema = json.loads((HERE / "grafana/schema/dashboard.jsonschema.json").read_text())
    value = schema["definitions"]["Threshold"]["properties"]["value"]
    value["type"] = ["number", "null"]
    return schema  # type: ignore[no-any-return]


def reasons(error: Any) -> list[Any]:
    """An error's own reasons; for a `oneOf` (a panel is a panel or a row), those of the
    branch the value came nearest to."""
    if not error.context:
        return [error]
    branches: dict[int, list[Any]] = {}
    for e in error.context:
        branches.setdefault(e.relative_schema_path[0], []).append(e)
    return [r for e in min(branches.values(), key=len) for r in reasons(e)]


def schema_errors(board: dict[str, Any]) -> list[str]:
    """'path: message' for each reason Grafana's schema refuses a dashboard."""
    validator = jsonschema.Draft7Validator(grafana_schema())
    found = [r for e in validator.iter_errors(board) for r in reasons(e)]
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def test_the_dashboard_is_valid_against_grafanas_own_schema() -> None:
    assert schema_errors(dashboard()) == []


def test_grafanas_schema_refuses_what_grafana_would_not_read() -> None:
    board = dashboard()
    board["panels"][1]["gridpos"] = board["panels"][1].pop("gridPos")  # a misspelt key
    board["templating"]["list"][0]["current"] = {}  # an option without text and value
    steps = [{"value": None}]  # a step without its colour
    board["panels"][2]["fieldConfig"]["defaults"]["thresholds"] = {
        "mode": "absolute",
        "steps": steps,
    }
    del board["schemaVersion"]
    assert schema_errors(board) == [
        ": 'schemaVersion' is a required property",
        "panels/1: Additional properties are not allowed ('gridpos' was unexpected)",
        "panels/2/fieldConfig/defaults/thresholds/steps/0: 'color' is a required property",
        "templating/list/0/current: 'text' is a required property",
        "templating/list/0/current: 'value' is a required property",
    ]


def test_the_compose_profile_provisions_the_rules_and_the_dashboard() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for port in services[name]["ports"]:
            assert port.startswith("127.0.0.1:"), port
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), volume
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    provider = yaml.safe_load((HERE / "grafana/provisioning/dashboards/flashsale.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts["./deploy/observability/grafana/dashboards"] == dashboards["options"]["path"]
    source = yaml.safe_load((HERE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert {f"flashsale-{k}" for k in ("gateway", "inventory", "orders", "payments")} <= jobs
    for job in config["scrape_configs"]:
        for found in job.get("dns_sd_configs", []):
            assert set(found["names"]) <= set(services), found


def test_the_workers_probes_use_the_endpoints_the_workers_serve() -> None:
    docs = yaml.safe_load_all((PROJECT_ROOT / "deploy/k8s/base/workers.yaml").read_text())
    deployments = [d for d in docs if d and d["kind"] == "Deployment"]
    assert len(deployments) == 3
    for d in deployments:
        (container,) = d["spec"]["template"]["spec"]["containers"]
        paths = {
            probe: container[probe]["httpGet"]["path"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")
        }
        assert paths == {
            "startupProbe": "/readyz",
            "readinessProbe": "/readyz",
            "livenessProbe": "/healthz",
        }, d["metadata"]["name"]
