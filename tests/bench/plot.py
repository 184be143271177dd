"""The PNG: designs side by side, then how this project grows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: a file only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from tests.bench.report import DESIGNS  # noqa: E402

_BLUE, _ORANGE, _GREY = "#1f77b4", "#ff7f0e", "#7f7f7f"


def _bars(ax: Axes, labels: list[str], series: dict[str, list[float]], colors: list[str]) -> None:
    width = 0.8 / max(1, len(series))
    for i, ((name, values), color) in enumerate(zip(series.items(), colors, strict=False)):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(xs, values, width, label=name, color=color)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(labels)), labels)
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _designs(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [("project", results["headline"])] if results.get("headline") else []
    return [(DESIGNS[k], f) for k, f in found + list(results["baselines"].items())]


def _absent(ax: Axes) -> None:
    ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", color=_GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def _reads(reads: Axes, staleness: Axes, results: dict[str, Any]) -> None:
    """Product pages: reads/s and p99 of the four designs; the staleness across processes."""
    designs = results.get("reads", {}).get("designs", {})
    if designs:
        labels = [DESIGNS[k] for k in designs]
        _bars(reads, labels, {"reads/s": [f["reads_per_s"] for f in designs.values()]}, [_BLUE])
        twin = reads.twinx()
        twin.plot(labels, [f["p99_ms"] or 0 for f in designs.values()], "s", color=_ORANGE)
        twin.set_ylabel("p99 ms", color=_ORANGE)
        twin.set_ylim(bottom=0)
    else:
        _absent(reads)
    reads.set_title("GET /api/products/{id}, 2 processes each, holds trickling in")
    stale = results.get("reads", {}).get("staleness")
    if stale and stale.get("probes"):
        names = ["p50", "p99", "max"]
        values = [stale["p50_ms"] or 0, stale["p99_ms"] or 0, stale["max_ms"] or 0]
        _bars(staleness, names, {"ms": values}, [_BLUE])
        staleness.axhline(100, color=_GREY, ls=":", label="target p99 100 ms")
        staleness.legend(fontsize=8)
    else:
        _absent(staleness)
    staleness.set_title("A hold through one gateway process, seen by another (ms)")


def plot(results: dict[str, Any], path: Path) -> None:
    """Write the plot of `results` to `path`."""
    fig, axes = plt.subplots(3, 2, figsize=(13, 13))
    (throughput, latency), (connections, conditions), (reads, staleness) = axes
    designs = _designs(results)
    labels = [name for name, _ in designs]
    connections_of = designs[0][1]["connections"] if designs else 100
    _bars(
        throughput,
        labels,
        {
            "holds/s": [f["holds_per_s"] for _, f in designs],
            "sold-out answers/s": [f["soldout_per_s"] for _, f in designs],
        },
        [_BLUE, _ORANGE],
    )
    throughput.set_title(f"Throughput, one hot product, {connections_of} connections")
    _bars(
        latency,
        labels,
        {
            "p50": [f["p50_ms"] or 0 for _, f in designs],
            "p99": [f["p99_ms"] or 0 for _, f in designs],
        },
        [_BLUE, _ORANGE],
    )
    latency.set_title("Latency of a hold (ms), same runs")
    latency.set_ylabel("ms")

    points = [e for e in results["scenarios"] if e["name"].startswith("connections-")]
    if points:
        xs = [e["connections"] for e in points]
        connections.plot(xs, [e["holds_per_s"] for e in points], "o-", color=_BLUE, label="holds/s")
        connections.set_xscale("log", base=2)
        connections.set_xticks(xs, [str(x) for x in xs])
        connections.set_ylim(bottom=0)
        connections.set_ylabel("holds/s")
        twin = connections.twinx()
        twin.plot(xs, [e["p99_ms"] or 0 for e in points], "s--", color=_ORANGE, label="p99 ms")
        twin.set_ylim(bottom=0)
        twin.set_ylabel("p99 ms")
        handles = connections.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        connections.legend(handles=handles, loc="lower center", fontsize=8, ncols=2)
        connections.grid(alpha=0.3)
    else:
        _absent(connections)
    connections.set_title("This project: holds/s and p99 against connections (1 hot product)")
    connections.set_xlabel("connections")

    others = [e for e in results["scenarios"] if not e["name"].startswith("connections-")]
    head = results.get("headline")
    bars = ([("headline (1 product)", head["holds_per_s"])] if head else []) + [
        (e["name"], e["holds_per_s"]) for e in others
    ]
    if others:
        _bars(conditions, [n for n, _ in bars], {"holds/s": [v for _, v in bars]}, [_BLUE])
        if head:
            conditions.axhline(
                0.8 * head["holds_per_s"], color=_GREY, ls=":", label="0.8× headline"
            )
            conditions.legend(fontsize=8)
    else:
        _absent(conditions)
    conditions.set_title(f"This project: holds/s under growth ({connections_of} connections)")

    _reads(reads, staleness, results)

    fig.suptitle(
        "POST /api/holds (qty 1) and GET /api/products/{id}, wrk — "
        f"{results['machine']['cpus']} CPUs, {results['started_at']}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
