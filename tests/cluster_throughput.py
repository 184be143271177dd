"""Broker throughput of partition queues on one node and on a three-node cluster.

`uv run python -m tests.cluster_throughput` starts its own RabbitMQ nodes on free ports in a
temporary folder, declares partition queues with the production arguments (quorum, single
active consumer, delivery limit, dead-lettering), and for a few seconds publishes persistent
1 KiB messages with publisher confirms (a window of 200 unconfirmed) while one consumer per
queue takes them with prefetch 100 and acknowledges each, one client process per queue. It
prints messages/s through the broker for: 1 partition on 1 node; 1 partition on the 3-node
cluster (three members: every message written by all three); 3 partitions on the cluster,
each led by another node; and the load average before and after (the machine's other work
falls on the figures). Used by docs/scaling.md; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aio_pika

from shared import topology
from shared.localservers import LocalServers, listener_port

BODY = b"x" * 1024


async def _declare(url: str, name: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        q = topology.partition_queue(0)
        # led by the node it is declared through (the launcher's nodes balance leaders)
        arguments = {**dict(q.arguments or {}), "x-queue-leader-locator": "client-local"}
        await channel.declare_queue(name, durable=True, arguments=arguments)


async def _pump(url: str, name: str, seconds: float) -> int:
    """Publish and consume on one queue for `seconds`; the messages consumed."""
    pub = await aio_pika.connect(url)
    sub = await aio_pika.connect(url)
    consumed = 0
    async with pub, sub:
        in_channel = await sub.channel()
        await in_channel.set_qos(prefetch_count=100)
        queue = await in_channel.get_queue(name, ensure=False)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal consumed
            await message.ack()
            consumed += 1

        await queue.consume(on_message)
        out = await pub.channel(publisher_confirms=True)
        window = asyncio.Semaphore(200)
        stop = time.monotonic() + seconds
        pending: set[asyncio.Task[object]] = set()

        async def publish_one() -> None:
            try:
                message = aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await out.default_exchange.publish(message, name)
            finally:
                window.release()

        while time.monotonic() < stop:
            await window.acquire()
            task: asyncio.Task[object] = asyncio.create_task(publish_one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(0.5)
    return consumed


def _pump_process(url: str, name: str, seconds: float) -> int:
    return asyncio.run(_pump(url, name, seconds))


def _measure(urls: list[str], names: list[str], seconds: float) -> float:
    """Messages/s through the broker, one client process per queue."""
    from concurrent.futures import ProcessPoolExecutor

    for url, name in zip(urls, names, strict=True):
        asyncio.run(_declare(url, name))  # declared through a node: that node leads it
    with ProcessPoolExecutor(len(names)) as pool:
        counts = list(pool.map(_pump_process, urls, names, [seconds] * len(names)))
    return sum(counts) / seconds


def _servers(home: Path, cluster: int) -> LocalServers:
    ports: set[int] = set()
    return LocalServers(
        home,
        amqp_port=listener_port(ports),
        mgmt_port=listener_port(ports),
        pg_port=listener_port(ports),
        prometheus_port=listener_port(ports),
        dist_port=listener_port(ports),
        node_name=f"flashsale-throughput-{cluster}-{home.name[-6:]}",
        cluster=cluster,
    )


def main() -> None:
    """Run the three measurements and print them (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, float] = {"load average at start": os.getloadavg()[0]}
    for cluster in (1, 3):
        home = Path(tempfile.mkdtemp(prefix="flashsale-throughput-"))
        home.chmod(0o755)
        servers = _servers(home, cluster)
        try:
            servers.prepare_home()
            servers.start_rabbit()
            nodes = servers.nodes
            op = [n.amqp_url for n in nodes]
            label = f"1 partition, {cluster} node(s)"
            results[label] = _measure(op[:1], ["bench.p00"], args.seconds)
            if cluster == 3:
                names = [f"bench.p{i + 1:02d}" for i in range(3)]
                label = "3 partitions, 3 nodes (one leader per node)"
                results[label] = _measure(op, names, args.seconds)
        finally:
            servers.stop_rabbit()
            shutil.rmtree(home, ignore_errors=True)
    results["load average at end"] = os.getloadavg()[0]
    for label, rate in results.items():
        unit = "" if label.startswith("load") else " messages/s (published, confirmed, consumed)"
        sys.stdout.write(f"{label:<45} {rate:>9,.1f}{unit}\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
