"""What is measured: a design's headline and sold-out runs, and this project's growth."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests import servers as server_sources
from tests.bench import baselines, project, report, wrk
from tests.bench.baselines import Baseline
from tests.harness import System

GROWTH_CONNECTIONS = (50, 100, 200, 400)
MANY_PRODUCTS = 1000
HISTORY_ROWS = 2_000_000
EXPIRY_TTL_SECONDS = 3
WARM_UP_SECONDS = 2


def _settle(connections: int) -> None:
    """Pause after a run: what was in flight when wrk stopped is answered before the next one."""
    time.sleep(max(1.0, connections / 200))


def _settled(run: wrk.Run) -> dict[str, Any]:
    _settle(run.connections)
    return run.figures()


@contextlib.contextmanager
def running(
    servers: server_sources.ServerSet, ttl: int, args: argparse.Namespace
) -> Iterator[System]:
    system = project.start(servers, ttl, args.inventory_workers, args.gateways, args.settings)
    try:
        yield system
    finally:
        system.stop()


def project_design(system: System) -> Baseline:
    """This project as one of the designs of the headline comparison."""
    url = system.base_url
    return Baseline("this project", url, lambda stock: project.products(url, stock)[0])


@contextlib.contextmanager
def baseline_designs(
    servers: server_sources.ServerSet, logs: Path
) -> Iterator[dict[str, Baseline]]:
    """Both baselines, running at once beside this project (they take turns at the load)."""
    report.progress("starting the baselines")
    with (
        baselines.lock_per_request(servers.database_url, logs) as lock,
        baselines.redis_lua(logs) as redis,
    ):
        yield {"lock_per_request": lock, "redis_lua": redis}


def headlines(
    designs: dict[str, Baseline], clients: int, seconds: float, rounds: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each design: holds on one hot product, then the same load on a product of stock 0.

    The designs take turns, `rounds` times, so a change in the machine's other load falls on
    all of them alike; each design's runs are merged.
    """
    hot = {k: d.make_product(project.BOTTOMLESS) for k, d in designs.items()}
    sold_out = {k: d.make_product(0) for k, d in designs.items()}
    holds: dict[str, list[wrk.Run]] = {k: [] for k in designs}
    refused: dict[str, list[wrk.Run]] = {k: [] for k in designs}
    for k, d in designs.items():
        wrk.drive(d.base_url, [hot[k]], 10, WARM_UP_SECONDS)
    for _ in range(rounds):
        for k, d in designs.items():
            holds[k].append(wrk.drive(d.base_url, [hot[k]], clients, seconds / rounds))
            _settle(clients)
        for k, d in designs.items():
            run = wrk.drive(d.base_url, [sold_out[k]], clients, seconds / rounds, True)
            refused[k].append(run)
            _settle(clients)
    for k in designs:
        figures = {**wrk.merge(holds[k]).figures(), "rounds": rounds}
        no = wrk.merge(refused[k])
        figures["soldout_per_s"] = round(no.per_second(409), 1)
        figures["soldout_p50_ms"] = no.latency_ms(50)
        figures["soldout_p99_ms"] = no.latency_ms(99)
        figures["soldout_statuses"] = no.figures().get("statuses", {})
        yield k, figures


def growth_on(
    system: System, chosen: set[str], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    """The growth points that need no restart: connections, and 1,000 products (fresh products
    on the headline's system)."""
    url, secs = system.base_url, args.growth_seconds
    if "connections" in chosen:
        report.progress(f"growth: connections {GROWTH_CONNECTIONS}, {secs:.0f} s each")
        wrk.drive(url, project.products(url, project.BOTTOMLESS), 10, WARM_UP_SECONDS)
        for c in GROWTH_CONNECTIONS:
            fresh = project.products(url, project.BOTTOMLESS)
            yield {
                "name": f"connections-{c}",
                "products": 1,
                **_settled(wrk.drive(url, fresh, c, secs)),
            }
    if "products" in chosen:
        report.progress(f"growth: {MANY_PRODUCTS} products")
        many = project.products(url, project.BOTTOMLESS, MANY_PRODUCTS)
        wrk.drive(url, many, 10, WARM_UP_SECONDS)
        measured = _settled(wrk.drive(url, many, args.clients, secs))
        yield {"name": f"products-{MANY_PRODUCTS}", "products": MANY_PRODUCTS, **measured}


def _expiries(servers: server_sources.ServerSet, args: argparse.Namespace) -> dict[str, Any]:
    """A short TTL and a window long enough that the first holds' expiries come back in it."""
    report.progress(f"growth: hold TTL {EXPIRY_TTL_SECONDS} s, expiries coming back")
    with running(servers, EXPIRY_TTL_SECONDS, args) as system:
        hot = project.products(system.base_url, project.BOTTOMLESS)
        wrk.drive(system.base_url, hot, 10, WARM_UP_SECONDS)
        start = datetime.now(UTC)
        measured = wrk.drive(system.base_url, hot, args.clients, max(args.growth_seconds, 10.0))
        back = project.expired_between(servers.database_url, hot[0], start, datetime.now(UTC))
        entry = {
            "name": f"expiries-ttl-{EXPIRY_TTL_SECONDS}s",
            "products": 1,
            "ttl_seconds": EXPIRY_TTL_SECONDS,
            **back,
            **_settled(measured),
        }
        deadline = time.monotonic() + 60
        while project.active_holds(servers.database_url) and time.monotonic() < deadline:
            time.sleep(1)  # the next scenario starts with no expiry still to come back
    return entry


def _rows(servers: server_sources.ServerSet, args: argparse.Namespace) -> dict[str, Any]:
    """The hot product's table holds ≥ 2 million past holds (bulk-inserted) before the run."""
    with running(servers, project.LONG_TTL_SECONDS, args) as system:
        hot = project.products(system.base_url, project.BOTTOMLESS)
        report.progress(f"growth: bulk-inserting past holds up to {HISTORY_ROWS:,} rows")
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


def growth_apart(
    servers: server_sources.ServerSet, chosen: set[str], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    """The growth scenarios that need a system of their own, one entry each."""
    if "expiries" in chosen:
        yield _expiries(servers, args)
    if "rows" in chosen:
        yield _rows(servers, args)
