"""deploy/rabbitmq/definitions.json says exactly what the processes declare (a drift test)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from deploy import definitions
from shared import topology

pytestmark = pytest.mark.unit


def _committed(path: Any) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", definitions.OUTPUTS, ids=lambda p: p.name)
def test_the_committed_definitions_are_what_the_code_declares(path: Any) -> None:
    assert path.read_text() == definitions.render(), (
        f"{path} is out of date: run `./dev docs` (python -m deploy.definitions)"
    )


def test_every_command_dead_and_delay_queue_is_in_the_definitions_with_its_arguments() -> None:
    settings = definitions.default_settings()
    expected = [
        *topology.command_queues(settings.partitions),
        *(topology.dead_queue(q.name) for q in topology.command_queues(settings.partitions)),
        topology.hold_delay(settings.hold_ttl_seconds)[1],
        topology.order_delay(settings.payment_window_seconds)[1],
    ]
    queues = {q["name"]: q for q in _committed(definitions.OUTPUTS[0])["queues"]}
    assert set(queues) == {q.name for q in expected}
    for q in expected:
        assert queues[q.name]["arguments"] == dict(q.arguments or {}), q.name
        assert queues[q.name]["durable"] is True
        assert queues[q.name]["arguments"]["x-queue-type"] == "quorum"


def test_partitions_are_single_active_consumer_with_a_delivery_limit_and_a_dead_queue() -> None:
    doc = _committed(definitions.OUTPUTS[0])
    queues = {q["name"]: q["arguments"] for q in doc["queues"]}
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in doc["bindings"]}
    for p in range(definitions.default_settings().partitions):
        name = topology.partition_key(p)
        assert queues[name]["x-single-active-consumer"] is True
        assert queues[name]["x-delivery-limit"] == topology.DELIVERY_LIMIT
        assert queues[name]["x-dead-letter-exchange"] == topology.DEAD_EXCHANGE.name
        assert (topology.INVENTORY_EXCHANGE.name, name, name) in bindings
        assert (topology.DEAD_EXCHANGE.name, f"{name}.dead", name) in bindings


def test_policies_cover_every_command_and_delay_queue_and_no_dead_queue() -> None:
    doc = _committed(definitions.OUTPUTS[0])
    policies = {p["name"]: p for p in doc["policies"]}

    def policy_of(queue: str) -> str | None:
        found = [n for n, p in policies.items() if re.search(p["pattern"], queue)]
        assert len(found) <= 1, (queue, found)
        return found[0] if found else None

    for q in doc["queues"]:
        name, args = q["name"], q["arguments"]
        if name.endswith(".dead"):
            assert policy_of(name) is None
        elif ".delay." in name:
            assert policy_of(name) == "flashsale-delays"
            rules = policies["flashsale-delays"]["definition"]
            assert rules["dead-letter-exchange"] == args["x-dead-letter-exchange"]
        else:
            assert policy_of(name) == "flashsale-commands"
            rules = policies["flashsale-commands"]["definition"]
            assert rules["delivery-limit"] == args["x-delivery-limit"]
            assert rules["dead-letter-strategy"] == args["x-dead-letter-strategy"]
            assert rules["overflow"] == args["x-overflow"] == "reject-publish"


def test_definitions_name_no_user_and_no_password() -> None:
    doc = _committed(definitions.OUTPUTS[0])
    assert "users" not in doc and "permissions" not in doc
    assert "password" not in json.dumps(doc)
