"""Fault matrix, processes: a hung (SIGSTOPped) inventory consumer and a gateway killed with
SIGKILL, each under steady load, on a system of their own (its own virtual host)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import topology
from tests.bench import wrk
from tests.fault.load import SteadyLoad, assert_nothing_lost_doubled_oversold_or_stuck
from tests.fault.test_inventory_faults import _active_inventory_pid
from tests.harness import System, isolated_system, wait_for
from tests.helpers import make_product
from tests.servers import ServerSet

pytestmark = pytest.mark.fault

#: What the issue asks: a hung consumer's partitions move within 10 s, a gateway kill costs
#: clients under a second of failed requests.
FAILOVER_BOUND = 10.0
GATEWAY_KILL_BOUND = 1.0


@pytest.fixture(scope="module")
def lab(servers: ServerSet) -> Iterator[System]:
    """Two gateway processes on one port, two inventory workers, orders and payments; holds
    answered 503 after 2 s without a decision, so a failure window is measured finely. The
    sweep runs, as it does in production: a worker stopped between a commit and the publish of
    that batch's expiry leaves holds that only the sweep expires (without it here, they were
    expired only when another system's sweep happened to run in the same session)."""
    overrides = {
        "FLASHSALE_REQUEST_TIMEOUT_SECONDS": "2",
        "FLASHSALE_HOLD_TTL_SECONDS": "5",
        "FLASHSALE_SWEEP_INTERVAL_SECONDS": "1",
    }
    workers = {"inventory": 2, "orders": 1, "payments": 1}
    with isolated_system(servers, workers=workers, overrides=overrides) as (system, _, _):
        # the second process on the same port (SO_REUSEPORT); the port answers while it still
        # starts, and a client that connected meanwhile (wrk's 2,000) never reaches it
        system.add("gateway")
        _both_listening(system)
        yield system


def _listeners(port: int) -> int:
    """Sockets listening on `port` (with SO_REUSEPORT, one per process)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                found += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port  # LISTEN
    return found


def _both_listening(system: System, timeout: float = 60) -> None:
    """Until both gateway processes listen on the shared port."""
    deadline = time.monotonic() + timeout
    while _listeners(system.http_port) < 2:
        assert time.monotonic() < deadline, "the second gateway process did not start"
        time.sleep(0.1)


async def _product(lab: System) -> int:
    async with httpx.AsyncClient(base_url=lab.base_url, timeout=30) as c:
        return int((await make_product(c, stock=1_000_000))["id"])


async def _stop_the_deciding_consumer(
    servers: ServerSet, partition: str, vhost: str, load: SteadyLoad
) -> tuple[int, float]:
    """SIGSTOP the inventory worker that decides `partition` now: its pid and when it stopped.

    The broker's view of the active consumer lags (its statistics), so the one it shows may
    already be the standby: then the holds go on being placed, none fails, and that one is let
    go again and the broker asked anew. The hold's deadline in this lab is 2 s."""
    for _ in range(3):
        victim = _active_inventory_pid(servers, partition, vhost=vhost)
        failed_before = len(load.failures("hold"))
        os.kill(victim, signal.SIGSTOP)
        stopped = time.monotonic()
        await asyncio.sleep(3)  # past the hold's deadline: a hold sent to it has failed by now
        if len(load.failures("hold")) > failed_before or not load.successes_after(stopped + 0.5):
            return victim, stopped
        os.kill(victim, signal.SIGCONT)  # the standby: its stop changed nothing
        print(f"pid {victim} was shown active on {partition} but was not deciding it")  # noqa: T201
        await load.serving(since=time.monotonic())
    raise AssertionError(f"no inventory worker shown active on {partition} was deciding it")


async def test_a_hung_inventory_consumer_loses_its_partition_within_ten_seconds(
    lab: System, servers: ServerSet, engine: AsyncEngine
) -> None:
    product_id = await _product(lab)
    partition = topology.product_routing_key(product_id, 8)
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(lab.amqp_url).path[1:])
    async with SteadyLoad(lab.base_url, product_id) as load:
        await load.serving()
        victim, stopped = await _stop_the_deciding_consumer(servers, partition, vhost, load)
        try:

            async def taken_over() -> bool:
                return any(
                    a.started > stopped + 0.5 for a in load.successes_after(stopped)
                ) and bool(load.failures("hold"))

            await wait_for(taken_over, timeout=30, interval=0.2)
            failover = min(a.started for a in load.successes_after(stopped + 0.5)) - stopped
            await load.serving(since=time.monotonic())  # steady again
        finally:
            os.kill(victim, signal.SIGCONT)
    print(  # noqa: T201 (the figure, with -s)
        f"hung consumer: holds failed for {load.failed_seconds('hold'):.2f} s, "
        f"standby deciding {failover:.2f} s after the stop"
    )
    load.assert_honest_answers()
    assert load.failed_seconds("hold") <= FAILOVER_BOUND
    assert failover <= FAILOVER_BOUND
    assert _active_inventory_pid(servers, partition, vhost=vhost) != victim
    assert not load.failures("order") and not load.failures("webhook")  # not on that partition
    await assert_nothing_lost_doubled_oversold_or_stuck(engine, load)


async def test_a_gateway_killed_with_sigkill_costs_clients_under_a_second(
    lab: System, engine: AsyncEngine
) -> None:
    product_id = await _product(lab)
    gateways = [n for n in lab.procs if n.startswith("gateway")]
    assert len(gateways) == 2
    async with SteadyLoad(lab.base_url, product_id, shoppers=8) as load:
        await load.serving()
        lab.kill9(gateways[0])
        killed = time.monotonic()
        lab.add("gateway")  # as the supervisor does, at once (cli.supervisor)
        await asyncio.to_thread(_both_listening, lab)
        await load.serving(since=killed + GATEWAY_KILL_BOUND)
    failed = load.failures()
    print(  # noqa: T201 (the figure, with -s)
        f"gateway kill: {len(failed)} failed requests within {load.failed_seconds():.3f} s"
    )
    load.assert_honest_answers()
    assert load.failed_seconds() < GATEWAY_KILL_BOUND
    assert all(a.started < killed + GATEWAY_KILL_BOUND for a in failed)
    assert load.successes_after(killed + GATEWAY_KILL_BOUND), "the survivor kept serving"
    await assert_nothing_lost_doubled_oversold_or_stuck(engine, load)


FLOOD_CONNECTIONS = 2000
FLOOD_SECONDS = 6
#: The issue's bound: every answer of the flood (the 429s too) within a second at p99, and the
#: holds let in at their normal latency. Measured on the shared 2-core machine (wrk, both
#: gateway processes, the workers, RabbitMQ and PostgreSQL on it, load average 2-9): p99
#: 0.45-0.80 s over 21 runs. It was 1.1-4 s while the second gateway process was still starting
#: when wrk opened its connections (all 2,000 went to one process).
FLOOD_P99_MS = 1000.0
NORMAL_HOLD_SECONDS = 1.0


async def test_a_flood_of_connections_is_shed_early_and_answered_within_a_second(
    lab: System, engine: AsyncEngine
) -> None:
    assert _listeners(lab.http_port) == 2  # the flood meets both processes
    product_id = await _product(lab)
    async with SteadyLoad(lab.base_url, product_id) as load:
        await load.serving()
        flood = asyncio.to_thread(
            wrk.drive,
            lab.base_url,
            [product_id],
            FLOOD_CONNECTIONS,
            FLOOD_SECONDS,
            count_statuses=True,
        )
        flood_started = time.monotonic()
        during = asyncio.create_task(flood)
        await asyncio.sleep(FLOOD_SECONDS / 2)
        async with httpx.AsyncClient(base_url=lab.base_url, timeout=10) as c:
            started = time.monotonic()
            health = await c.get("/healthz")
            health_seconds = time.monotonic() - started
        run = await during
    p99 = run.latency_ms(99)
    placed = sorted(
        a.ended - a.started
        for a in load.answers
        if a.route == "hold"
        and a.status == 201
        and flood_started < a.started < flood_started + FLOOD_SECONDS
    )
    print(  # noqa: T201 (the figure, with -s)
        f"flood of {FLOOD_CONNECTIONS} connections: {run.requests} answers, p50 "
        f"{run.latency_ms(50)} ms, p99 {p99} ms, statuses {run.statuses}, socket errors "
        f"{run.socket_errors}; /healthz in {health_seconds:.3f} s; steady keyed holds "
        f"placed meanwhile: {len(placed)}, slowest {placed[-1] if placed else 0:.3f} s"
    )
    assert health.status_code == 200 and health_seconds < 5.0  # up (measured by a busy client)
    assert p99 is not None and p99 < FLOOD_P99_MS
    # the steady shoppers' holds let in meanwhile: nine in ten at their normal latency
    assert placed and placed[int(len(placed) * 0.9)] < NORMAL_HOLD_SECONDS, placed
    # 503: a hold let in but not decided within this lab's 2 s (honest, with Retry-After)
    assert set(run.statuses) <= {201, 429, 503}, run.statuses
    assert run.statuses.get(201, 0) > 0 and run.statuses.get(429, 0) > 0  # shed, still selling
    load.assert_honest_answers()
    await assert_nothing_lost_doubled_oversold_or_stuck(engine, load)
