"""Product pages under a rush: `GET /api/products/{id}` of this project beside a plain asyncpg
read, a Redis cache read and the HTTP ceiling (each 2 processes), every design while holds
trickle in on the same product; then how far behind another gateway process is.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from shared.settings import PROJECT_ROOT
from tests import servers as server_sources
from tests.bench import baselines, project, report, wrk
from tests.bench.baselines import Baseline
from tests.harness import System

#: Holds per second beside each read run (every design gets the same).
TRICKLE_PER_S = 200
#: Seconds between two staleness probes, and the most a probe may wait for its answer.
PROBE_EVERY = 0.05
PROBE_TIMEOUT = 5.0
WARM_UP_SECONDS = 2


@contextlib.contextmanager
def read_designs(servers: server_sources.ServerSet, logs: Path) -> Iterator[dict[str, Baseline]]:
    """The three read baselines, running at once beside this project."""
    report.progress("starting the read baselines")
    with (
        baselines.lock_per_request(servers.database_url, logs) as plain,
        baselines.redis_lua(logs) as redis,
        baselines.http_ceiling(logs) as ceiling,
    ):
        yield {"asyncpg_read": plain, "redis_cache": redis, "http_ceiling": ceiling}


def _trickle(url: str, product_id: int, seconds: float) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.bench.trickle", url, str(product_id)]
    argv += [str(TRICKLE_PER_S), str(seconds)]
    return subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)


def _beside_holds(
    url: str, product_id: int, run: Any, seconds: float
) -> tuple[Any, dict[str, Any]]:
    """`run()` while holds trickle in on the product; its result and the holds' statuses."""
    trickle = _trickle(url, product_id, seconds)
    try:
        result = run()
    finally:
        out, _ = trickle.communicate(timeout=seconds + 30)
    return result, json.loads(out or "{}")


def reads(
    designs: dict[str, Baseline], clients: int, seconds: float, rounds: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each design reads one product at `clients` connections, in turns, `rounds` times."""
    hot = {k: d.make_product(project.BOTTOMLESS) for k, d in designs.items()}
    runs: dict[str, list[wrk.Run]] = {k: [] for k in designs}
    held: dict[str, dict[str, int]] = {k: {} for k in designs}
    for k, d in designs.items():
        wrk.read(d.base_url, hot[k], 10, WARM_UP_SECONDS)
    slot = seconds / rounds
    for _ in range(rounds):
        for k, d in designs.items():
            run, holds = _beside_holds(
                d.base_url,
                hot[k],
                lambda d=d, k=k: wrk.read(d.base_url, hot[k], clients, slot),
                slot,
            )
            runs[k].append(run)
            for status, n in holds.get("statuses", {}).items():
                held[k][status] = held[k].get(status, 0) + n
            time.sleep(1)
    for k in designs:
        merged = wrk.merge(runs[k])
        figures = merged.figures()
        figures["reads_per_s"] = figures.pop("holds_per_s")
        figures["rounds"] = rounds
        figures["holds_beside"] = held[k]
        yield k, figures


def _probe(writer: str, reader: str, product_id: int, stop: threading.Event) -> list[float]:
    """Seconds from a hold's 201 (through `writer`) until `reader`, another gateway process,
    shows it; one probe every PROBE_EVERY until `stop`."""
    took: list[float] = []
    with (
        httpx.Client(base_url=writer, timeout=30) as w,
        httpx.Client(base_url=reader, timeout=30) as r,
    ):
        page = f"/api/products/{product_id}"
        available = int(w.get(page, params={"consistent": "true"}).json()["available"])
        r.get(page)  # the reader holds the product from now on
        while not stop.is_set():
            placed = w.post("/api/holds", json={"product_id": product_id, "qty": 1})
            answered = time.monotonic()
            if placed.status_code != 201:
                continue
            available -= 1
            while int(r.get(page).json()["available"]) > available:
                if time.monotonic() - answered > PROBE_TIMEOUT:
                    raise RuntimeError("a hold was not reflected by another gateway in time")
                time.sleep(0.001)
            took.append(time.monotonic() - answered)
            time.sleep(PROBE_EVERY)
    return took


def _quantile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def staleness(system: System, clients: int, seconds: float) -> dict[str, Any]:
    """Probes through a gateway process of its own while the others take the read load and
    holds trickle in on the hot product: how long until a committed hold shows elsewhere."""
    reader = system.add_gateway()
    hot, probed = project.products(system.base_url, project.BOTTOMLESS, 2)
    stop = threading.Event()
    found: list[float] = []

    def probe() -> None:
        found.extend(_probe(system.base_url, reader, probed, stop))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        _beside_holds(
            system.base_url,
            hot,
            lambda: wrk.read(system.base_url, hot, clients, seconds),
            seconds,
        )
    finally:
        stop.set()
        thread.join(timeout=PROBE_TIMEOUT + 10)
    ms = [t * 1000 for t in found]
    return {
        "probes": len(ms),
        "p50_ms": _round(_quantile(ms, 50)),
        "p99_ms": _round(_quantile(ms, 99)),
        "max_ms": _round(max(ms) if ms else None),
        "under": f"{clients} reading connections and {TRICKLE_PER_S} holds/s on another product",
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
