"""Holds benchmark: `./dev bench [--quick] [--scenarios ...] [--seconds 20] [--clients 100]`.

One invocation, one machine, one PostgreSQL server: the headline (this project, one hot
product, qty-1 holds, wrk) and sold-out answers/s; the same load against two baselines it starts
itself (lock per request; Redis + Lua) with the ratios; then how this project grows with
connections, products, expiries coming back inside the window and a holds table of ≥ 2 million
rows. Prints a table, writes a JSON file and a PNG plot. It asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.db.migrate import upgrade
from shared.settings import PROJECT_ROOT
from tests import servers as server_sources
from tests.bench import baselines, project, report, wrk
from tests.harness import System

SCENARIOS = ("headline", "baselines", "connections", "products", "expiries", "rows")
QUICK = ("headline", "baselines")
GROWTH_CONNECTIONS = (50, 100, 200, 400)
MANY_PRODUCTS = 1000
HISTORY_ROWS = 2_000_000
EXPIRY_TTL_SECONDS = 3
WARM_UP_SECONDS = 2
#: Pause after each run: what was in flight when wrk stopped is answered before the next one.
SETTLE_SECONDS = 2
OUT = PROJECT_ROOT / ".local" / "bench"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./dev bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="headline and baselines only")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--seconds", type=float, default=20, help="per headline/baseline run")
    parser.add_argument("--growth-seconds", type=float, default=10, help="per growth point")
    parser.add_argument("--clients", type=int, default=100, help="connections of the headline")
    parser.add_argument("--inventory-workers", type=int, default=1)
    parser.add_argument(
        "--json", type=Path, default=OUT / "bench.json", help="default: .local/bench/bench.json"
    )
    parser.add_argument(
        "--png", type=Path, default=OUT / "bench.png", help="default: .local/bench/bench.png"
    )
    return parser


def _settled(run: wrk.Run) -> dict[str, Any]:
    time.sleep(SETTLE_SECONDS)
    return run.figures()


def holds_and_soldout(
    base_url: str, make_product: Callable[[int], int], clients: int, seconds: float
) -> dict[str, Any]:
    """Holds on one hot product, then the same load on a product of stock 0."""
    hot, sold_out = make_product(project.BOTTOMLESS), make_product(0)
    wrk.drive(base_url, [hot], 10, WARM_UP_SECONDS)
    figures = _settled(wrk.drive(base_url, [hot], clients, seconds))
    refused = wrk.drive(base_url, [sold_out], clients, seconds, count_statuses=True)
    figures["soldout_per_s"] = round(refused.per_second(409), 1)
    figures["soldout_p99_ms"] = refused.latency_ms.get("99%")
    figures["soldout_statuses"] = refused.figures().get("statuses", {})
    _settled(refused)
    return figures


@contextlib.contextmanager
def running(servers: server_sources.ServerSet, ttl: int, workers: int) -> Iterator[System]:
    system = project.start(servers, ttl, workers)
    try:
        yield system
    finally:
        system.stop()


def _connections_and_products(
    servers: server_sources.ServerSet, chosen: set[str], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    with running(servers, project.LONG_TTL_SECONDS, args.inventory_workers) as system:
        url, secs = system.base_url, args.growth_seconds
        if "connections" in chosen:
            wrk.drive(url, project.products(url, project.BOTTOMLESS), 10, WARM_UP_SECONDS)
            for c in GROWTH_CONNECTIONS:
                fresh = project.products(url, project.BOTTOMLESS)
                yield {
                    "name": f"connections-{c}",
                    "products": 1,
                    **_settled(wrk.drive(url, fresh, c, secs)),
                }
        if "products" in chosen:
            many = project.products(url, project.BOTTOMLESS, MANY_PRODUCTS)
            wrk.drive(url, many, 10, WARM_UP_SECONDS)
            measured = _settled(wrk.drive(url, many, args.clients, secs))
            yield {"name": f"products-{MANY_PRODUCTS}", "products": MANY_PRODUCTS, **measured}


def _expiries(servers: server_sources.ServerSet, args: argparse.Namespace) -> dict[str, Any]:
    """A short TTL and a window long enough that the first holds' expiries come back in it."""
    with running(servers, EXPIRY_TTL_SECONDS, args.inventory_workers) as system:
        hot = project.products(system.base_url, project.BOTTOMLESS)
        start = datetime.now(UTC)
        measured = wrk.drive(system.base_url, hot, args.clients, max(args.growth_seconds, 10.0))
        back = project.expired_between(servers.database_url, hot[0], start, datetime.now(UTC))
        entry = {
            "name": f"expiries-ttl-{EXPIRY_TTL_SECONDS}s",
            "products": 1,
            "ttl_seconds": EXPIRY_TTL_SECONDS,
            "expired_in_window": back,
            **_settled(measured),
        }
        deadline = time.monotonic() + 60
        while project.active_holds(servers.database_url) and time.monotonic() < deadline:
            time.sleep(1)  # the next scenario starts with no expiry still to come back
    return entry


def _rows(servers: server_sources.ServerSet, args: argparse.Namespace) -> dict[str, Any]:
    """The hot product's table holds ≥ 2 million past holds (bulk-inserted) before the run."""
    with running(servers, project.LONG_TTL_SECONDS, args.inventory_workers) as system:
        hot = project.products(system.base_url, project.BOTTOMLESS)
        began = time.monotonic()
        rows = project.history(servers.database_url, hot[0], HISTORY_ROWS)
        inserted_in = round(time.monotonic() - began, 1)
        wrk.drive(system.base_url, hot, 10, WARM_UP_SECONDS)
        measured = _settled(wrk.drive(system.base_url, hot, args.clients, args.growth_seconds))
    return {
        "name": "rows-2M",
        "products": 1,
        "hold_rows": rows,
        "rows_inserted_in_s": inserted_in,
        **measured,
    }


def growth(
    servers: server_sources.ServerSet, chosen: set[str], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    """The growth scenarios of this project, one entry each, in the order they run."""
    if chosen & {"connections", "products"}:
        yield from _connections_and_products(servers, chosen, args)
    if "expiries" in chosen:
        yield _expiries(servers, args)
    if "rows" in chosen:
        yield _rows(servers, args)


def bench(args: argparse.Namespace, chosen: set[str], results: dict[str, Any]) -> None:
    """Run the chosen scenarios, filling `results` as they finish."""
    servers = server_sources.start()
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    try:
        upgrade(servers.database_url)
        if "headline" in chosen:
            with running(servers, project.LONG_TTL_SECONDS, args.inventory_workers) as system:
                url = system.base_url
                results["headline"] = holds_and_soldout(
                    url, lambda stock: project.products(url, stock)[0], args.clients, args.seconds
                )
            report.say(report.headline_line(results["headline"]))
        if "baselines" in chosen:
            lock = baselines.lock_per_request(servers.database_url, logs)
            for key, started in (
                ("lock_per_request", lock),
                ("redis_lua", baselines.redis_lua(logs)),
            ):
                with started as baseline:
                    figures = holds_and_soldout(
                        baseline.base_url, baseline.make_product, args.clients, args.seconds
                    )
                results["baselines"][key] = figures
                report.say(report.headline_line(figures, report.DESIGNS[key]))
        for entry in growth(servers, chosen, args):
            results["scenarios"].append(entry)
            report.say(report.scenario_line(entry))
    finally:
        servers.stop()
        shutil.rmtree(logs, ignore_errors=True)


def _shown(path: Path) -> str:
    """A path as the reader typed it: relative to the project when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(PROJECT_ROOT))
    return str(path)


def main() -> None:
    args = _parser().parse_args()
    chosen = set(QUICK if args.quick else args.scenarios.split(","))
    unknown = chosen - set(SCENARIOS)
    if unknown:
        _parser().error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    # SIGTERM unwinds like Ctrl-C: every server and process the bench started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg())},
        "options": {k: _shown(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "headline": None,
        "baselines": {},
        "scenarios": [],
    }
    began = time.monotonic()
    try:
        bench(args, chosen, results)
    finally:
        results["elapsed_s"] = round(time.monotonic() - began, 1)
        results["ratios"] = report.ratios(results)
        report.say()
        report.say(report.table(results))
        report.write(results, args.json, args.png)
        report.say(f"\nJSON: {_shown(args.json)}\nplot: {_shown(args.png)}")


if __name__ == "__main__":
    main()
