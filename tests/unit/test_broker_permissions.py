"""The broker permissions of each process kind, read as RabbitMQ reads them (anchored regexes
matched against exchange and queue names alike)."""

from __future__ import annotations

import re

import pytest

from shared import roles, topology

pytestmark = pytest.mark.unit

TOPOLOGY_NAMES = [
    *(e.name for e in (topology.INVENTORY_EXCHANGE, topology.COMMANDS_EXCHANGE)),
    topology.DEAD_EXCHANGE.name,
    topology.LEVELS_EXCHANGE.name,
    *(q.name for q in topology.command_queues(16)),
    *(topology.dead_queue(q.name).name for q in topology.command_queues(16)),
    topology.hold_delay(120)[0].name,  # exchange and queue alike
    topology.order_delay(900)[0].name,
]


def allows(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


@pytest.mark.parametrize("kind", roles.PROCESS_KINDS)
def test_every_kind_may_declare_the_whole_topology_and_its_own_queues_only(kind: str) -> None:
    perms = roles.broker_permissions(kind)
    for name in TOPOLOGY_NAMES:
        assert allows(perms.configure, name), (kind, name)
    assert allows(perms.configure, topology.reply_queue_name(kind))
    assert allows(perms.read, topology.reply_queue_name(kind))
    others = [k for k in roles.PROCESS_KINDS if k != kind]
    for other in others:
        assert not allows(perms.configure, topology.reply_queue_name(other)), (kind, other)
    for stranger in ("anything", "inventory.p01x", "amq.gen-abc", "flashsale.other"):
        assert not allows(perms.configure, stranger), (kind, stranger)


@pytest.mark.parametrize(
    ("kind", "consumes"),
    [
        ("gateway", []),
        ("inventory", ["inventory.p00", "inventory.p15"]),
        ("orders", ["orders.commands"]),
        ("payments", ["payments.webhooks"]),
    ],
)
def test_each_kind_may_consume_its_own_command_queues_and_no_others(
    kind: str, consumes: list[str]
) -> None:
    read = roles.broker_permissions(kind).read
    command_queues = ["inventory.p00", "inventory.p15", "orders.commands", "payments.webhooks"]
    for queue in command_queues:
        assert allows(read, queue) == (queue in consumes), (kind, queue)
    for dead in ("inventory.p00.dead", "orders.commands.dead", "payments.webhooks.dead"):
        assert not allows(read, dead), (kind, dead)  # the operator's, for inspection and replay


@pytest.mark.parametrize(
    ("kind", "publishes"),
    [
        ("gateway", {"flashsale.inventory", "flashsale.commands"}),
        ("inventory", {"flashsale.inventory", "flashsale.levels", "amq.default"}),
        ("orders", {"flashsale.inventory", "amq.default"}),
        ("payments", {"flashsale.inventory", "amq.default"}),
    ],
)
def test_each_kind_may_publish_to_the_exchanges_it_sends_to_and_no_others(
    kind: str, publishes: set[str]
) -> None:
    write = roles.broker_permissions(kind).write
    exchanges = {"flashsale.inventory", "flashsale.commands", "flashsale.dead", "flashsale.levels"}
    for exchange in exchanges | {"amq.default"}:
        assert allows(write, exchange) == (exchange in publishes), (kind, exchange)
