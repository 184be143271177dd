"""What one hold costs: CPU per hold in each process, what PostgreSQL writes per hold, and how
far one inventory writer goes.

`uv run python -m tests.hold_costs` starts its own RabbitMQ and PostgreSQL (the launcher's, on
free ports in a temporary folder) and the project's processes as the bench runs them (2 gateway
processes, 2 inventory workers, an orders and a payments worker), then:

1. drives `POST /api/holds` on one product from wrk (100 connections, `--seconds`) and reads,
   before and after, the CPU time (user + system, from /proc) of the gateway processes, the
   inventory workers, PostgreSQL (its postmaster and every backend, ended ones too), RabbitMQ
   (its Erlang VM) and wrk, and PostgreSQL's counters of the database (commits, rows inserted
   and updated, WAL bytes): each divided by the holds placed; then the same for sold-out
   answers (409, from each gateway process's stock levels) on a product with no unit left;
2. with the processes stopped, runs the inventory's own batch (`workers.inventory.handlers.
   handle`: load, decide and save in one transaction) in a loop, one hold per batch and 100
   per batch: holds/s, WAL bytes and CPU per hold (PostgreSQL's, the writer's) of one writer,
   without the broker.

Prints the figures and the load average (the machine's other work falls on them); `--json
PATH`. Used by docs/scaling.md; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from shared.db.migrate import upgrade
from shared.db.session import make_engine
from shared.messages import PlaceHold
from shared.settings import Settings
from tests.bench import project, wrk
from tests.harness import System
from tests.servers import local_servers, remove_tree
from workers.inventory import handlers

_TICK = os.sysconf("SC_CLK_TCK")
_COUNTERS = """
SELECT xact_commit, tup_inserted, tup_updated, pg_current_wal_lsn()::text AS lsn,
       (SELECT count(*) FROM holds) AS holds
FROM pg_stat_database WHERE datname = current_database()
"""


def _cpu_of_tree(root: int) -> float:
    """CPU seconds of a process and its descendants (live ones, and ended ones it reaped)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(v) for v in stats[pid][11:15])  # utime stime cutime cstime
        todo += children.get(pid, [])
    return total / _TICK


def _postmaster(servers: Any) -> int:
    return int((servers.pg_dir / "data" / "postmaster.pid").read_text().split()[0])


def _wrk_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is our only waited-for child
    return usage.ru_utime + usage.ru_stime


async def _counters(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        row = await conn.fetchrow(_COUNTERS)
    finally:
        await conn.close()
    high, low = row["lsn"].split("/")
    return {
        "commits": row["xact_commit"],
        "rows_inserted": row["tup_inserted"],
        "rows_updated": row["tup_updated"],
        "wal_bytes": (int(high, 16) << 32) + int(low, 16),
        "holds": row["holds"],
    }


def under_load(
    system: System, servers: Any, product_id: int, seconds: float, sold_out: bool = False
) -> dict[str, Any]:
    """Part 1: CPU and PostgreSQL's writes per hold placed (per sold-out answer with
    `sold_out`), at 100 connections on one product."""
    roots = {
        "gateway": [p.pid for n, p in system.procs.items() if n.startswith("gateway")],
        "inventory": [p.pid for n, p in system.procs.items() if n.startswith("inventory")],
        "postgresql": [_postmaster(servers)],
        "rabbitmq": [servers.rabbit_pid()],
    }

    def cpu() -> dict[str, float]:
        return {k: sum(_cpu_of_tree(p) for p in pids) for k, pids in roots.items()} | {
            "wrk": _wrk_cpu()
        }

    before, db_before = cpu(), asyncio.run(_counters(servers.owner_database_url))
    run = wrk.drive(system.base_url, [product_id], 100, seconds, count_statuses=sold_out)
    after = cpu()
    time.sleep(1.5)  # PostgreSQL publishes its statistics about once a second
    db_after = asyncio.run(_counters(servers.owner_database_url))
    what = "answer" if sold_out else "hold"
    count = run.statuses.get(409, 0) if sold_out else db_after["holds"] - db_before["holds"]
    return {
        "seconds": round(run.seconds, 1),
        f"{what}s": count,
        f"{what}s_per_s": round(count / run.seconds, 1),
        "p99_ms": run.latency_ms(99),
        f"cpu_ms_per_{what}": {k: round(1000 * (after[k] - before[k]) / count, 3) for k in after},
        f"postgresql_per_{what}": {
            k: round((db_after[k] - db_before[k]) / count, 3) for k in db_after if k != "holds"
        },
    }


def _sold_out(base_url: str) -> int:
    """A product whose one unit is held: every gateway process answers 409 from its levels."""
    (product_id,) = project.products(base_url, 1)
    r = httpx.post(f"{base_url}/api/holds", json={"product_id": product_id, "qty": 1}, timeout=10)
    r.raise_for_status()
    time.sleep(1)  # the stock levels after the commit reach every gateway process
    return product_id


async def _one_writer(
    url: str, postmaster: int, product_id: int, batch: int, seconds: float
) -> dict[str, float]:
    """Part 2: the inventory's batch in a loop, in this process."""
    settings = Settings(database_url=url, hold_ttl_seconds=3600)
    engine = make_engine(settings, pool_size=1)
    try:
        loop = asyncio.get_running_loop()
        before = await _counters(url)
        pg_cpu, own_cpu = _cpu_of_tree(postmaster), time.process_time()
        placed, start = 0, loop.time()
        while loop.time() - start < seconds:
            commands = [
                PlaceHold(hold_id=uuid.uuid4(), product_id=product_id, qty=1) for _ in range(batch)
            ]
            await handlers.handle(engine, settings, commands)
            placed += batch
        elapsed = loop.time() - start
        pg_cpu, own_cpu = _cpu_of_tree(postmaster) - pg_cpu, time.process_time() - own_cpu
        after = await _counters(url)
    finally:
        await engine.dispose()
    wal = (after["wal_bytes"] - before["wal_bytes"]) / placed
    return {
        "holds_per_s": round(placed / elapsed, 1),
        "wal_bytes_per_hold": round(wal, 1),
        "postgresql_cpu_ms_per_hold": round(1000 * pg_cpu / placed, 4),
        "writer_cpu_ms_per_hold": round(1000 * own_cpu / placed, 4),
    }


def main() -> None:
    """Both parts on servers of their own; the figures as a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average_at_start": round(os.getloadavg()[0], 1)}
    servers, home = local_servers("costs")
    try:
        servers.start()
        upgrade(servers.owner_database_url)
        system = System.on(
            servers,
            workers={"inventory": 2, "orders": 1, "payments": 1},
            gateways=2,
            overrides={"FLASHSALE_HOLD_TTL_SECONDS": str(project.LONG_TTL_SECONDS)},
        ).start()
        try:
            loaded, alone = project.products(system.base_url, project.BOTTOMLESS, 2)
            results["holds"] = under_load(system, servers, loaded, args.seconds)
            gone = _sold_out(system.base_url)
            results["sold_out"] = under_load(system, servers, gone, args.seconds / 2, True)
        finally:
            system.stop()
        results["one_writer"] = {
            f"batch_{batch}": asyncio.run(
                _one_writer(
                    servers.app_database_url, _postmaster(servers), alone, batch, args.seconds / 2
                )
            )
            for batch in (1, 100)
        }
    finally:
        servers.stop()
        remove_tree(home)
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
