"""What `flashsale simulate` shows: the live line, the summary table, the figures and the plot."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from cli.sim_shoppers import Answer, Recorder

#: Answer outcomes drawn in the answers/s plot, in this order.
PLOTTED = (
    "held",
    "refused",
    "ordered",
    "applied",
    "duplicate",
    "pending_order",
    "rejected",
    "error",
)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def errors(rec: Recorder) -> int:
    """Answers that are no answer, an overload, a 5xx, or a 4xx a shopper should never get."""
    return sum(1 for a in rec.answers if a.outcome in ("error", "rejected"))


def live_view(rec: Recorder, shoppers: int, window: float = 1.0) -> Table:
    """Elapsed, shoppers done (of all), holds/s over the last second, sold, refused, errors, p99."""
    now = rec.now()
    recent = [a for a in rec.answers if a.kind == "hold" and a.t >= now - window]
    rate = sum(1 for a in recent if a.outcome == "held") / max(min(window, now), 0.25)
    values = {
        "elapsed": f"{now:.1f} s",
        "done": f"{sum(rec.journeys.values())}/{shoppers}",
        "holds/s": f"{rate:.1f}",
        "sold": str(rec.sold_units),
        "refused": str(rec.count("hold", "refused")),
        "errors": str(errors(rec)),
        "p99": f"{percentile([a.ms for a in rec.answers], 99):.0f} ms",
        "available": str(rec.stock[-1][1]) if rec.stock else "?",
    }
    view = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    for name in values:
        view.add_column(name, justify="right")
    view.add_row(*values.values())
    return view


def figures(rec: Recorder, elapsed: float, stock_total: int) -> dict[str, Any]:
    """The run in numbers (also what --json writes)."""
    holds = [a for a in rec.answers if a.kind == "hold"]
    latency = {
        kind: {
            f"p{q}": round(percentile([a.ms for a in rec.answers if a.kind == kind], q), 1)
            for q in (50, 90, 99)
        }
        for kind in ("browse", "hold", "order", "webhook")
    }
    webhooks = Counter(a.outcome for a in rec.answers if a.kind == "webhook")
    return {
        "elapsed_seconds": round(elapsed, 2),
        "shoppers": sum(rec.journeys.values()),
        "journeys": dict(sorted(rec.journeys.items())),
        "holds_placed": sum(1 for a in holds if a.outcome == "held"),
        "holds_refused": sum(1 for a in holds if a.outcome == "refused"),
        "holds_per_second": round(sum(1 for a in holds if a.outcome == "held") / elapsed, 1)
        if elapsed > 0
        else 0.0,
        "sold_units": rec.sold_units,
        "webhooks": dict(sorted(webhooks.items())),
        "webhooks_sent_twice": rec.sent["duplicate"],
        "webhooks_before_order": rec.sent["out of order"],
        "errors": errors(rec),
        "requests": len(rec.answers),
        "latency_ms": latency,
        "stock_total": stock_total,
        "available_at_end": rec.stock[-1][1] if rec.stock else None,
    }


def summary_table(found: dict[str, Any], audit: str) -> Table:
    """The summary as a table of what a launch rehearsal asks."""
    table = Table(title="flashsale simulate: summary", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("shoppers", found["shoppers"]),
        ("elapsed", f"{found['elapsed_seconds']:.1f} s"),
        ("holds placed", found["holds_placed"]),
        ("holds refused (409)", found["holds_refused"]),
        ("holds/s", found["holds_per_second"]),
        ("sold (paid units)", found["sold_units"]),
        *((f"  journey: {k}", v) for k, v in found["journeys"].items()),
        *((f"  webhook answer: {k}", v) for k, v in found["webhooks"].items()),
        ("webhooks sent twice", found["webhooks_sent_twice"]),
        ("webhooks before their order", found["webhooks_before_order"]),
        ("errors (no answer, 429, 5xx, other 4xx)", found["errors"]),
        *(
            (f"latency {kind} p50 / p90 / p99", f"{v['p50']} / {v['p90']} / {v['p99']} ms")
            for kind, v in found["latency_ms"].items()
        ),
        ("stock total / available at end", f"{found['stock_total']} / {found['available_at_end']}"),
        ("conservation audit", audit),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _buckets(answers: list[Answer], width: float) -> dict[int, list[Answer]]:
    found: dict[int, list[Answer]] = {}
    for a in answers:
        found.setdefault(int(a.t / width), []).append(a)
    return found


def plot(rec: Recorder, elapsed: float, path: Path, title: str = "") -> str | None:
    """Stock over time, answers/s by outcome, latency percentiles; None or why there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "no plot: matplotlib is missing (install the extra: pip install 'flashsale[simulate]')"
        )
    fig, (stock, answers, latency) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    if rec.stock:
        stock.step([t for t, _ in rec.stock], [v for _, v in rec.stock], where="post")
    stock.set_ylabel("available units")
    stock.set_title("stock over time")
    width = 1.0 if elapsed >= 20 else 0.25  # a short run still shows its shape
    buckets = _buckets(rec.answers, width)
    xs = [(b + 0.5) * width for b in range(int(elapsed / width) + 1)]
    for outcome in PLOTTED:
        counts = [
            sum(1 for a in buckets.get(b, []) if a.outcome == outcome) / width
            for b in range(len(xs))
        ]
        if any(counts):
            answers.plot(xs, counts, label=outcome)
    answers.set_ylabel("answers/s")
    answers.set_title("answers per second by outcome")
    answers.legend(loc="upper right", fontsize="small")
    filled = sorted(buckets)
    for q in (50, 90, 99):
        latency.plot(
            [(b + 0.5) * width for b in filled],
            [percentile([a.ms for a in buckets[b]], q) for b in filled],
            label=f"p{q}",
        )
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("seconds since start")
    latency.set_title("latency percentiles (every request)")
    latency.legend(loc="upper right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
