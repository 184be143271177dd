"""deploy/observability/render.py draws the dashboard from its own queries: every target is
asked of Prometheus over the range, every panel is drawn as its type with the series' legend
names, a failed query shows in its panel; local.py scrapes the processes `flashsale up` runs."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml  # type: ignore[import-untyped]
from matplotlib.patches import Rectangle

from deploy.observability import local
from deploy.observability.panels import draw, fmt, threshold_color
from deploy.observability.render import DASHBOARD, fetch, legend, panels

pytestmark = pytest.mark.unit

START, END, STEP = 1_700_000_000.0, 1_700_000_600.0, 15.0
LABELS = [
    {"result": "placed", "queue": "inventory.p00", "job": "flashsale-gateway", "status": "201"},
    {"result": "refused", "queue": "inventory.p01", "job": "flashsale-orders", "status": "409"},
]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def matrix(k: int) -> list[list[Any]]:
    """Prometheus's [time, "value"] pairs: a NaN at the end, as a rate's last step can be."""
    points = [[START + i * STEP, f"{10 * (k + 1) + i}"] for i in range(40)]
    return [*points, [END, "NaN"]]


class FakePrometheus:
    """/api/v1/query_range answering two series per query, or an error for `failing`."""

    def __init__(self, failing: str = "") -> None:
        self.asked: list[dict[str, str]] = []
        self.failing = failing

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        self.asked.append(dict(request.url.params))
        if request.url.params["query"] == self.failing:
            error = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            return httpx.Response(400, json=error)
        result = [{"metric": m, "values": matrix(k)} for k, m in enumerate(LABELS)]
        data = {"resultType": "matrix", "result": result}
        return httpx.Response(200, json={"status": "success", "data": data})

    def fetch(self, board: dict[str, Any]) -> Any:
        transport = httpx.MockTransport(self)
        with httpx.Client(transport=transport, base_url="http://prometheus") as client:
            return fetch(client, board, START, END, STEP)


def targets(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


def test_every_target_of_the_dashboard_is_queried_over_the_range() -> None:
    prometheus = FakePrometheus()
    prometheus.fetch(dashboard())
    assert [a["query"] for a in prometheus.asked] == targets(dashboard())
    for asked in prometheus.asked:
        assert (float(asked["start"]), float(asked["end"]), float(asked["step"])) == (
            START,
            END,
            STEP,
        )


def test_every_panel_is_drawn_as_its_type_with_its_series(tmp_path: Path) -> None:
    board = dashboard()
    data = FakePrometheus().fetch(board)
    fig = draw(board, data, START, END, "http://prometheus")
    axes = {ax.get_gid(): ax for ax in fig.axes}
    drawn = [p for p in panels(board) if p["type"] != "row"]
    assert {p["type"] for p in drawn} == {"timeseries", "stat", "bargauge"}
    assert set(axes) == {str(p["id"]) for p in drawn}
    for panel in drawn:
        ax, series = axes[str(panel["id"])], data[panel["id"]].series
        assert len(series) == 2 * len(panel["targets"]), panel["title"]
        texts = [t.get_text() for t in ax.texts]
        if panel["type"] == "timeseries":
            drawn_values = [np.asarray(line.get_ydata()).tolist() for line in ax.get_lines()]
            assert drawn_values[0][:3] == series[0].values[:3] and len(drawn_values) == len(series)
            box = ax.get_legend()
            assert box is not None, panel["title"]
            shown = [t.get_text().strip() for t in box.get_texts()]  # " ": no label
            assert shown == [s.label for s in series], panel["title"]
        elif panel["type"] == "stat":  # the last value that is a number, in its unit
            unit = panel["fieldConfig"]["defaults"].get("unit", "short")
            assert [fmt(s.values[-2], unit) for s in series] == [t for t in texts if t[0].isdigit()]
            assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == len(series)
        else:
            bars = [p.get_width() for p in ax.patches if isinstance(p, Rectangle)]
            assert bars == [s.values[-2] for s in series], panel["title"]
    fig.savefig(tmp_path / "dashboard.png")
    assert (tmp_path / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_query_is_shown_in_its_panel() -> None:
    board = dashboard()
    panel = next(p for p in panels(board) if p["type"] == "timeseries")
    data = FakePrometheus(failing=panel["targets"][0]["expr"]).fetch(board)
    assert data[panel["id"]].errors == ["A: bad_data: parse error"]
    fig = draw(board, data, START, END, "http://prometheus")
    (ax,) = [ax for ax in fig.axes if ax.get_gid() == str(panel["id"])]
    assert "query failed" in ax.texts[0].get_text()


def test_series_are_named_by_the_legend_format_or_their_labels() -> None:
    labels = {"__name__": "up", "job": "flashsale-orders", "instance": "127.0.0.1:8104"}
    assert legend("{{job}} on {{ instance }}", labels) == "flashsale-orders on 127.0.0.1:8104"
    assert legend("{{missing}} replies", labels) == "replies"
    assert legend("", labels) == 'up{instance="127.0.0.1:8104", job="flashsale-orders"}'
    assert legend("__auto", {}) == "{}"


def test_values_are_shown_in_their_unit_and_coloured_by_their_thresholds() -> None:
    assert [fmt(v, "s") for v in (0.0123, 2.5, 95, 7200)] == ["12.3 ms", "2.5 s", "1.58 min", "2 h"]
    assert [fmt(12.34, u) for u in ("reqps", "ops", "short")] == [
        "12.3 req/s",
        "12.3 ops/s",
        "12.3",
    ]
    assert fmt(math.nan, "s") == fmt(None, "s") == "No data"
    steps = [{"color": "green", "value": None}, {"color": "red", "value": 1}]
    panel = {"fieldConfig": {"defaults": {"thresholds": {"steps": steps}}}}
    assert [threshold_color(panel, v) for v in (None, 0, 1, 5)] == [
        "#73bf69",
        "#73bf69",
        "#f2495c",
        "#f2495c",
    ]


def test_the_local_prometheus_scrapes_every_process_the_launcher_started(tmp_path: Path) -> None:
    children, ports = {}, {"gateway": 8091, "gateway-2": 8092, "inventory-1": 8101, "orders": 8103}
    processes = []
    try:
        for name, port in ports.items():
            env = {**os.environ, "FLASHSALE_METRICS_PORT": str(port)}
            processes.append(subprocess.Popen(["sleep", "60"], env=env))
            children[name] = processes[-1].pid
        (tmp_path / "state.json").write_text(json.dumps({"children": children}))
        (tmp_path / "rabbitmq").mkdir()
        (tmp_path / "rabbitmq" / "rabbitmq.conf").write_text("prometheus.tcp.port = 15674\n")
        jobs = local.targets(tmp_path)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert jobs == {
        "flashsale-gateway": ["127.0.0.1:8091", "127.0.0.1:8092"],
        "flashsale-inventory": ["127.0.0.1:8101"],
        "flashsale-orders": ["127.0.0.1:8103"],
        "rabbitmq": ["127.0.0.1:15674"],
    }
    compose = yaml.safe_load((local.HERE / "prometheus.yml").read_text())
    config = local.local_config(compose, jobs, local.HERE / "alerts.yml", "5s")
    scraped = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert scraped["rabbitmq-queues"] == scraped["rabbitmq"] == ["127.0.0.1:15674"]
    assert scraped["flashsale-payments"] == []  # not started: nothing to scrape
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    tool = shutil.which("promtool")
    assert tool, "promtool (Debian package prometheus) is needed"
    checked = subprocess.run(
        [tool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
