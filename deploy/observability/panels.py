"""Grafana's panels drawn with matplotlib, on the dashboard's 24-column grid (render.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from deploy.observability.render import PanelData, Series, panels

_COL, _ROW = 0.8, 0.42  # inches per grid column and per grid row (Grafana: ~80 px, 30 px + gap)
_TOP = 1.0  # inches above the grid for the header
_BG, _PANEL, _TEXT, _DIM = "#111217", "#181b1f", "#d8d9da", "#8e8e8e"
_PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9"]
_PALETTE += ["#705da0", "#37872d", "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c"]
_NAMED = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "yellow": "#fade2a"}
_NAMED |= {"blue": "#5794f2", "purple": "#b877d9", "text": _TEXT, "transparent": _PANEL}
_INSET = {"timeseries": (0.95, 0.85), "bargauge": (1.5, 0.35)}  # inches: left, bottom
_TICKS = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600]
_RATE_UNITS = {"reqps": " req/s", "ops": " ops/s", "short": "", "none": ""}


def draw(
    dashboard: dict[str, Any], data: dict[int, PanelData], start: float, end: float, source: str
) -> Figure:
    """The whole dashboard as one figure; each panel's axes carries its id as `gid`."""
    laid = list(panels(dashboard))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in laid)
    width, height = 24 * _COL, _TOP + rows * _ROW
    fig = Figure(figsize=(width, height), dpi=100, facecolor=_BG)
    span = " to ".join(_utc(t).strftime("%Y-%m-%d %H:%M:%S") for t in (start, end))
    fig.text(0.01, 1 - 0.35 / height, dashboard["title"], color=_TEXT, fontsize=18, va="top")
    caption = f"{span} UTC; the dashboard's own queries against {source}, drawn without Grafana"
    fig.text(0.01, 1 - 0.75 / height, caption, color=_DIM, fontsize=10, va="top")
    for panel in laid:
        g = panel["gridPos"]
        box = (g["x"] * _COL / width, 1 - (_TOP + (g["y"] + g["h"]) * _ROW) / height)
        size = (g["w"] * _COL / width, g["h"] * _ROW / height)
        if panel["type"] == "row":
            fig.text(
                box[0] + 0.004,
                box[1] + size[1] / 2,
                panel["title"],
                color=_TEXT,
                fontsize=13,
                fontweight="bold",
                va="center",
            )
            continue
        pad = 0.06 / width, 0.06 / height
        fig.add_artist(
            Rectangle(
                (box[0] + pad[0], box[1] + pad[1]),
                size[0] - 2 * pad[0],
                size[1] - 2 * pad[1],
                transform=fig.transFigure,
                color=_PANEL,
                zorder=0,
            )
        )
        fig.text(
            box[0] + 2 * pad[0],
            box[1] + size[1] - 3 * pad[1],
            panel["title"],
            color=_TEXT,
            fontsize=11,
            va="top",
        )
        left, bottom = _INSET.get(panel["type"], (0.15, 0.25))  # room for ticks and legend
        inner = (box[0] + left / width, box[1] + bottom / height)
        extent = (size[0] - (left + 0.2) / width, size[1] - (bottom + 0.55) / height)
        ax = fig.add_axes((*inner, *extent), gid=str(panel["id"]))
        _style(ax)
        got = data.get(panel["id"], PanelData())
        if got.errors:
            _message(ax, "query failed\n" + "\n".join(got.errors), "#f2495c")
        elif not got.series:
            _message(ax, "No data", _DIM)
        elif panel["type"] == "timeseries":
            _timeseries(ax, panel, got.series, start, end)
        elif panel["type"] == "stat":
            _stat(ax, panel, got.series)
        elif panel["type"] == "bargauge":
            _bargauge(ax, panel, got.series)
        else:
            _message(ax, f"panel type {panel['type']} is not drawn here", "#f2495c")
    return fig


def fmt(value: float | None, unit: str) -> str:
    """A value as Grafana shows it in its unit (seconds, rates, plain numbers)."""
    if value is None or math.isnan(value):
        return "No data"
    if unit == "s":
        for scale, name in ((3600, "h"), (60, "min"), (1, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return "0 s"
    return f"{value:,.3g}{_RATE_UNITS.get(unit, ' ' + unit)}"


def threshold_color(panel: dict[str, Any], value: float | None) -> str:
    """The colour of the highest step a value reaches (the first step's null is -inf)."""
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    color = "green"
    for step in steps:
        if step["value"] is None or (value is not None and value >= step["value"]):
            color = step["color"]
    return _NAMED.get(color, color)


def _timeseries(
    ax: Axes, panel: dict[str, Any], series: list[Series], start: float, end: float
) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    for i, s in enumerate(series):
        ax.plot(
            s.times,
            s.values,
            label=s.label or " ",
            color=_PALETTE[i % len(_PALETTE)],
            linewidth=1.3,
        )
    ax.set_xlim(start, end)
    every = next((n for n in _TICKS if (end - start) / n <= 7), _TICKS[-1])
    ticks = list(range(int(start // every + 1) * every, int(end) + 1, every))
    ax.set_xticks(ticks, [_utc(t).strftime("%H:%M:%S" if every < 60 else "%H:%M") for t in ticks])
    ax.yaxis.set_major_formatter(lambda v, _: fmt(v, unit) if v else "0")
    ax.set_ylim(bottom=min([0.0, *(v for s in series for v in s.values if not math.isnan(v))]))
    ax.grid(color="#2c3235", linewidth=0.6)
    if panel.get("options", {}).get("legend", {}).get("showLegend", True):
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(0, -0.12),
            ncol=3,
            fontsize=7,
            frameon=False,
            labelcolor=_TEXT,
            handlelength=1.2,
            columnspacing=1.0,
        )


def _stat(ax: Axes, panel: dict[str, Any], series: list[Series]) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    ax.set_axis_off()
    width = 1 / len(series)
    for i, s in enumerate(series):
        value = s.last()
        ax.add_patch(
            Rectangle(
                (i * width + 0.01, 0.02), width - 0.02, 0.96, color=threshold_color(panel, value)
            )
        )
        if len(series) > 1:
            ax.text((i + 0.5) * width, 0.8, s.label, ha="center", color="white", fontsize=8)
        size = 30 if len(series) == 1 else 16
        ax.text(
            (i + 0.5) * width,
            0.42,
            fmt(value, unit),
            ha="center",
            va="center",
            color="white",
            fontsize=size,
            fontweight="bold",
        )


def _bargauge(ax: Axes, panel: dict[str, Any], series: list[Series]) -> None:
    lasts = [s.last() or 0.0 for s in series]
    colors = [threshold_color(panel, v) for v in lasts]
    ax.barh([s.label for s in series], lasts, color=colors, height=0.7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    for y, v in enumerate(lasts):
        ax.text(v, y, f" {fmt(v, 'short')}", va="center", color=_TEXT, fontsize=7)
    ax.set_xlim(0, max(lasts + [1.0]) * 1.1)


def _message(ax: Axes, text: str, color: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", color=color, fontsize=9, wrap=True)


def _style(ax: Axes) -> None:
    ax.set_facecolor(_PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=_DIM, labelsize=8)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
