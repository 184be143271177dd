"""A connection over a cluster's nodes: every attempt goes to the next node, backing off with
jitter, and a worker's consumer reaches every node with its heartbeat and its name."""

from __future__ import annotations

import os

import pytest
from yarl import URL

from shared.failover import BACKOFF_MAX_SECONDS, FailoverConnection
from shared.settings import Settings
from shared.worker import broker_urls

pytestmark = pytest.mark.unit

NODES = [URL(f"amqp://u:p@127.0.0.1:{port}/") for port in (5673, 5674, 5675)]


async def test_attempts_start_on_the_first_node_then_visit_every_node_in_turn() -> None:
    connection = FailoverConnection(NODES)
    tried = [connection.url for _ in range(7)]  # aio-pika reads `url` once per attempt
    assert tried[0] == NODES[0]
    assert set(tried[:3]) == set(NODES)
    assert tried[3:6] == tried[:3] and tried[6] == NODES[0]


async def test_pauses_between_failed_attempts_are_jittered_and_capped() -> None:
    connection = FailoverConnection(NODES)
    pauses = []
    for _ in range(40):
        _ = connection.url
        pauses.append(connection.reconnect_interval)
    assert pauses[0] == 0.0  # the first node at once
    assert all(0 <= p <= BACKOFF_MAX_SECONDS for p in pauses)
    assert len(set(pauses[10:])) > 1  # random, not one fixed interval for every process


def test_a_worker_consumer_knows_every_node_with_its_heartbeat_and_name() -> None:
    settings = Settings(
        amqp_url=str(NODES[1]),
        amqp_failover_urls=f" {NODES[2]}, {NODES[0]},",
        amqp_heartbeat_seconds=2,
    )
    urls = [URL(u) for u in broker_urls(settings, "orders")]
    assert [u.with_query(None) for u in urls] == [NODES[1], NODES[2], NODES[0]]
    for url in urls:
        assert url.query["heartbeat"] == "2"
        assert url.query["name"] == f"orders-consumer-{os.getpid()}"
