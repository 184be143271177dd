"""The RabbitMQ Prometheus plugin exports every rabbitmq_* series the alert rules and the
dashboard read, at the paths deploy/observability/prometheus.yml scrapes."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from shared import roles
from tests.servers import ServerSet
from tests.unit.test_observability import (
    HERE,
    dashboard_expressions,
    metric_names,
    rule_expressions,
)

pytestmark = pytest.mark.integration


def _scraped(port: int) -> str:
    """What Prometheus gets from the plugin, by the compose profile's scrape configs."""
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    texts = []
    for job in config["scrape_configs"]:
        if job["job_name"].startswith("rabbitmq"):
            params = [(k, v) for k, values in job.get("params", {}).items() for v in values]
            url = f"http://127.0.0.1:{port}{job.get('metrics_path', '/metrics')}"
            texts.append(httpx.get(url, params=params, timeout=30).text)
    return "\n".join(texts)


def test_the_plugin_exports_every_rabbitmq_series_the_rules_and_dashboard_read(
    servers: ServerSet,
) -> None:
    if servers.local is None:
        pytest.skip("the plugin's port is known for the launcher's servers only")
    used = {
        n
        for e in rule_expressions() + dashboard_expressions()
        for n in metric_names(e)
        if n.startswith("rabbitmq_")
    }
    assert used
    roles.run_sync(roles.declare_topology(servers.amqp_url, 8, 5, 6))  # as the harness does
    deadline = time.monotonic() + 30  # per-queue series appear with the first stats emission
    while True:
        text = _scraped(servers.local.prometheus_port)
        samples = {
            line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"
        }
        missing = used - samples
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"the plugin does not export {sorted(missing)}"
