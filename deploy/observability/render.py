"""The Grafana dashboard drawn from its own queries, for machines without Grafana.

`python -m deploy.observability.render --minutes 10` reads
grafana/dashboards/flashsale.json, runs every panel's PromQL targets against a Prometheus HTTP
API (`/api/v1/query_range`) and draws the panels on their grid into one PNG (panels.py): time
series as lines named by their legend format, stat panels as their last value, bar gauges as
bars, both coloured by the panel's thresholds. Exit 1 when a query failed (the panel says why).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.settings import PROJECT_ROOT

DASHBOARD = Path(__file__).parent / "grafana" / "dashboards" / "flashsale.json"
_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass
class Series:
    label: str
    times: list[float]
    values: list[float]

    def last(self) -> float | None:
        """Grafana's `lastNotNull`."""
        return next((v for v in reversed(self.values) if not math.isnan(v)), None)


@dataclass
class PanelData:
    series: list[Series] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included; a collapsed row carries its panels inside it."""
    for panel in dashboard["panels"]:
        yield panel
        if panel["type"] == "row":
            yield from panel.get("panels", [])


def legend(fmt: str, labels: dict[str, str]) -> str:
    """A series' name as Grafana writes it: the legend format with `{{label}}` filled in, or
    the labels themselves when the target has no format."""
    if fmt and fmt != "__auto":
        return _LABEL.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def query_range(
    client: httpx.Client, expr: str, start: float, end: float, step: float
) -> list[tuple[dict[str, str], list[float], list[float]]]:
    """One range query: (labels, times, values) per series; ValueError with Prometheus's
    own words when it refuses the query."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    answer = client.get("/api/v1/query_range", params=params)
    body = answer.json()
    if answer.status_code != 200 or body.get("status") != "success":
        raise ValueError(f"{body.get('errorType', answer.status_code)}: {body.get('error', '')}")
    found = []
    for result in body["data"]["result"]:
        times = [float(t) for t, _ in result["values"]]
        values = [float(v) for _, v in result["values"]]  # "NaN", "+Inf" included
        found.append((result["metric"], times, values))
    return found


def fetch(
    client: httpx.Client, dashboard: dict[str, Any], start: float, end: float, step: float
) -> dict[int, PanelData]:
    """Every visible target of every panel, by panel id."""
    data: dict[int, PanelData] = {}
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        got = data[panel["id"]] = PanelData()
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            try:
                found = query_range(client, target["expr"], start, end, step)
            except (ValueError, httpx.HTTPError) as e:
                got.errors.append(f"{target['refId']}: {e}")
                continue
            fmt = target.get("legendFormat", "")
            got.series += [Series(legend(fmt, m), t, v) for m, t, v in found]
    return data


def main(argv: list[str] | None = None) -> int:
    from deploy.observability.panels import draw  # matplotlib: only when drawing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="its base URL")
    parser.add_argument("--minutes", type=float, default=15.0, help="the time range's length")
    parser.add_argument("--end", type=float, help="unix seconds [default: now]")
    parser.add_argument("--step", type=float, help="seconds [default: range / 240, >= 1]")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "dashboard.png")
    args = parser.parse_args(argv)
    end = args.end or time.time()
    start = end - args.minutes * 60
    step = args.step or max(1.0, round((end - start) / 240))
    dashboard = json.loads(args.dashboard.read_text())
    with httpx.Client(base_url=args.prometheus, timeout=30) as client:
        data = fetch(client, dashboard, start, end, step)
    draw(dashboard, data, start, end, args.prometheus).savefig(args.out)
    errors = [f"{p['title']}: {e}" for p in panels(dashboard) for e in _errors(data, p)]
    sys.stderr.writelines(line + "\n" for line in errors)
    series = sum(len(d.series) for d in data.values())
    sys.stdout.write(f"{args.out}: {len(data)} panels, {series} series, {len(errors)} failed\n")
    return 1 if errors else 0


def _errors(data: dict[int, PanelData], panel: dict[str, Any]) -> list[str]:
    return data[panel["id"]].errors if panel["id"] in data else []


if __name__ == "__main__":
    sys.exit(main())
