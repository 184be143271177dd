"""The bench's output: lines as runs finish, the table, the JSON file, the PNG plot."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

DESIGNS = {
    "project": "this project",
    "lock_per_request": "lock per request",
    "redis_lua": "redis + lua",
    "asyncpg_read": "plain asyncpg read",
    "redis_cache": "redis cache read",
    "http_ceiling": "http ceiling",
}


def say(text: str = "") -> None:
    """A line on the terminal, at once (the bench runs for minutes)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


_STARTED = time.monotonic()


def progress(text: str) -> None:
    """What the bench is doing now, on stderr (stdout carries only figures)."""
    sys.stderr.write(f"[{time.monotonic() - _STARTED:4.0f} s] {text}\n")
    sys.stderr.flush()


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def headline_line(f: dict[str, Any], design: str = DESIGNS["project"]) -> str:
    """One line for a design's headline run, printed as it finishes."""
    return (
        f"{design}: {_num(f['holds_per_s'])} holds/s (p50 {_num(f['p50_ms'], 1)} ms, "
        f"p99 {_num(f['p99_ms'], 1)} ms, non-2xx {f['non_2xx']}), "
        f"{_num(f['soldout_per_s'])} sold-out answers/s"
    )


def read_line(f: dict[str, Any], design: str) -> str:
    """One line for a design's read runs, printed as they finish."""
    holds = f.get("holds_beside", {})
    return (
        f"{design}: {_num(f['reads_per_s'])} reads/s (p50 {_num(f['p50_ms'], 1)} ms, "
        f"p99 {_num(f['p99_ms'], 1)} ms, non-2xx {f['non_2xx']}), "
        f"holds beside it {', '.join(f'{n} × {s}' for s, n in holds.items()) or 'none'}"
    )


def staleness_line(s: dict[str, Any]) -> str:
    """How far behind another gateway process was."""
    return (
        f"staleness across gateway processes: p50 {_num(s['p50_ms'], 1)} ms, "
        f"p99 {_num(s['p99_ms'], 1)} ms, max {_num(s['max_ms'], 1)} ms "
        f"({s['probes']} probes, under {s['under']})"
    )


def read_ratios(results: dict[str, Any]) -> dict[str, float]:
    """This project's reads/s ÷ each read baseline's."""
    designs = results.get("reads", {}).get("designs", {})
    mine = designs.get("project")
    if not mine:
        return {}
    return {
        k: round(mine["reads_per_s"] / f["reads_per_s"], 3) if f["reads_per_s"] else float("nan")
        for k, f in designs.items()
        if k != "project"
    }


def scenario_line(e: dict[str, Any]) -> str:
    """One line for a growth point, printed as it finishes."""
    return (
        f"{e['name']}: {_num(e['holds_per_s'])} holds/s (c{e['connections']}, "
        f"p99 {_num(e['p99_ms'], 1)} ms, non-2xx {e['non_2xx']})"
    )


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """This project ÷ each baseline, for holds/s and sold-out answers/s."""
    head = results.get("headline")
    out: dict[str, dict[str, float]] = {}
    for key, base in results["baselines"].items():
        if head is None:
            continue
        out[key] = {
            m: round(head[m] / base[m], 3) if base[m] else float("nan")
            for m in ("holds_per_s", "soldout_per_s")
        }
    return out


_COLUMNS = (
    ("", 30, "name"),
    ("conns", 6, "connections"),
    ("products", 8, "products"),
    ("holds/s", 9, "holds_per_s"),
    ("p50 ms", 8, "p50_ms"),
    ("p90 ms", 8, "p90_ms"),
    ("p99 ms", 8, "p99_ms"),
    ("non-2xx", 8, "non_2xx"),
    ("sold-out/s", 11, "soldout_per_s"),
)


def _row(values: dict[str, Any]) -> str:
    cells = []
    for _, width, key in _COLUMNS:
        v = values.get(key)
        text = v if isinstance(v, str) else _num(v, 1 if key.endswith("_ms") else 0)
        cells.append(text.ljust(width) if key == "name" else text.rjust(width))
    return " ".join(cells)


def table(results: dict[str, Any]) -> str:
    """The whole run as a terminal table."""
    lines = [" ".join(h.ljust(w) if key == "name" else h.rjust(w) for h, w, key in _COLUMNS)]
    lines.append("-" * len(lines[0]))
    head = results.get("headline")
    if head is not None:
        lines.append(_row({**head, "name": "this project (headline)", "products": 1}))
    for key, figures in results["baselines"].items():
        lines.append(_row({**figures, "name": DESIGNS[key], "products": 1}))
    for key, r in results.get("ratios", {}).items():
        lines.append(
            f"  this project ÷ {DESIGNS[key]}: holds/s {r['holds_per_s']:.2f}×, "
            f"sold-out answers/s {r['soldout_per_s']:.2f}×"
        )
    designs = results.get("reads", {}).get("designs", {})
    if designs:
        lines.append("product pages, GET /api/products/{id} (holds/s column: reads/s)")
        for key, figures in designs.items():
            lines.append(
                _row(
                    {
                        **figures,
                        "holds_per_s": figures["reads_per_s"],
                        "name": DESIGNS[key],
                        "products": 1,
                    }
                )
            )
        for key, r in read_ratios(results).items():
            lines.append(f"  this project ÷ {DESIGNS[key]}: reads/s {r:.2f}×")
        stale = results["reads"].get("staleness")
        if stale:
            lines.append("  " + staleness_line(stale))
    if results["scenarios"]:
        lines.append("growth (this project)")
        for e in results["scenarios"]:
            lines.append(_row({**e, "name": "  " + e["name"]}))
            if "expired_in_window" in e:
                late = e["expiry_late_ms"]
                lines.append(
                    f"    expiries that came back inside the window: {e['expired_in_window']:,}, "
                    f"late after expires_at p50 {_num(late['p50'])} ms, "
                    f"p99 {_num(late['p99'])} ms, max {_num(late['max'])} ms"
                )
            if "hold_rows" in e:
                lines.append(
                    f"    hold rows in the table: {e['hold_rows']:,} "
                    f"(bulk insert took {e['rows_inserted_in_s']} s)"
                )
    machine, options = results["machine"], results["options"]
    lines.append(
        f"this project: {options['gateways']} gateway processes, "
        f"{options['inventory_workers']} inventory workers; baselines: 2 uvicorn workers each"
    )
    lines.append(
        f"{machine['cpus']} CPUs, load average {machine['loadavg_at_start'][0]:.1f} at start, "
        f"{machine.get('loadavg_at_end', [0])[0]:.1f} at end (other work on the machine); "
        f"wrk, 1 thread, qty-1 POST /api/holds; took {results.get('elapsed_s', 0):.0f} s"
    )
    return "\n".join(lines)


def write(results: dict[str, Any], json_path: Path, png_path: Path) -> None:
    """The JSON file and the plot (folders made as needed)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    head = results.get("headline") or {}
    flat = {k: head.get(k) for k in ("holds_per_s", "p50_ms", "p99_ms", "soldout_per_s")}
    page = results.get("reads", {})
    flat["reads_per_s"] = (page.get("designs", {}).get("project") or {}).get("reads_per_s")
    flat["read_staleness_p50_ms"] = (page.get("staleness") or {}).get("p50_ms")
    flat["read_staleness_p99_ms"] = (page.get("staleness") or {}).get("p99_ms")
    json_path.write_text(json.dumps({**flat, **results}, indent=2) + "\n")
    from tests.bench.plot import plot

    png_path.parent.mkdir(parents=True, exist_ok=True)
    plot(results, png_path)
