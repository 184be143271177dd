"""The pieces of `flashsale simulate` that decide nothing over the network: mix, figures, plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.sim_report import figures, live_view, percentile, plot
from cli.sim_shoppers import Answer, Recorder, parse_mix

pytestmark = pytest.mark.unit


def test_the_mix_is_weights_by_journey_name_normalised() -> None:
    mix = parse_mix("success=3, failure=1")
    assert mix == {"success": 0.75, "failure": 0.25, "abandon-hold": 0.0, "abandon-order": 0.0}
    for bad in ("sucess=1", "success", "success=-1", "success=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([], 99) == 0.0


def _recorded() -> Recorder:
    rec = Recorder()
    rec.answers = [
        Answer(0.1, "hold", "held", 201, 10.0),
        Answer(0.2, "hold", "refused", 409, 2.0),
        Answer(1.5, "order", "ordered", 201, 20.0),
        Answer(1.7, "webhook", "applied", 200, 15.0),
        Answer(1.8, "webhook", "duplicate", 200, 5.0),
        Answer(1.9, "hold", "error", 503, 5000.0),
    ]
    rec.journeys.update({"paid": 1, "refused": 1, "error": 1})
    rec.stock = [(0.0, 2), (0.5, 1), (2.0, 1)]
    rec.sold_units = 1
    return rec


def test_figures_count_what_the_shoppers_got() -> None:
    found = figures(_recorded(), elapsed=2.0, stock_total=2)
    assert (found["holds_placed"], found["holds_refused"], found["errors"]) == (1, 1, 1)
    assert found["webhooks"] == {"applied": 1, "duplicate": 1} and found["sold_units"] == 1
    assert found["latency_ms"]["hold"]["p99"] == 5000.0 and found["available_at_end"] == 1


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "sale.png"
    assert plot(_recorded(), 2.0, path) is None
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_the_live_view_shows_what_a_rehearsal_watches() -> None:
    from rich.console import Console

    console = Console(width=80, record=True)
    console.print(live_view(_recorded(), shoppers=5))
    text = console.export_text()
    for heading in ("elapsed", "holds/s", "sold", "refused", "errors", "p99", "available"):
        assert heading in text
    assert "3/5" in text and "5000 ms" in text
    assert max(len(line) for line in text.splitlines()) <= 80
