"""RabbitMQ definitions (exchanges, queues, bindings, policies) from what the code declares.

`python -m deploy.definitions` (or `./dev docs`) writes `deploy/rabbitmq/definitions.json`; an
operator imports it with the management UI ("Import definitions"), `rabbitmqctl
import_definitions` or `rabbitmqadmin import`. It is produced by running
`shared.bus.declare_topology` — the processes' own declaration — against a recording channel,
so it cannot say anything the code does not; a unit test checks the file is current.

Users and passwords are not in it: `python -m shared.roles` creates each process kind's user
with its own permissions (importing users would reset their passwords at every import).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from shared import roles, topology
from shared.bus import declare_topology
from shared.settings import PROJECT_ROOT, Settings

#: Where the file lives.
OUTPUTS = (PROJECT_ROOT / "deploy" / "rabbitmq" / "definitions.json",)
#: Replicas of every quorum queue: one per node of the three-node cluster. Not a queue
#: argument (RabbitMQ compares `x-quorum-initial-group-size` when a process declares the
#: queue again, and the processes do not send it) and not a policy key in 3.10: it is the
#: brokers' `quorum_cluster_size` (advanced.config), set to this by the local cluster and by
#: the RabbitmqCluster manifest.
QUORUM_GROUP_SIZE = 3
#: The RabbitMQ version the definitions were checked against (the Debian package's).
RABBIT_VERSION = "3.10.8"


class _Exchange:
    def __init__(self, name: str) -> None:
        self.name = name


class _Queue:
    def __init__(self, recorder: _Recorder, name: str) -> None:
        self._recorder = recorder
        self.name = name

    async def bind(self, exchange: _Exchange | str, routing_key: str = "") -> None:
        source = exchange if isinstance(exchange, str) else exchange.name
        self._recorder.bindings.append((source, self.name, routing_key))


class _Recorder:
    """Stands in for an aio-pika channel: remembers what is declared and bound."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: list[tuple[str, str, str]] = []

    async def declare_exchange(self, name: str, type: str, durable: bool) -> _Exchange:
        self.exchanges[name] = {"type": type, "durable": durable}
        return _Exchange(name)

    async def declare_queue(
        self, name: str, durable: bool, arguments: dict[str, Any] | None = None
    ) -> _Queue:
        self.queues[name] = {"durable": durable, "arguments": dict(arguments or {})}
        return _Queue(self, name)


def declared(settings: Settings) -> _Recorder:
    """What `shared.bus.declare_topology` declares for these settings."""
    recorder = _Recorder()
    asyncio.run(declare_topology(recorder, settings))  # type: ignore[arg-type]
    return recorder


def _policies(vhost: str) -> list[dict[str, Any]]:
    """The same rules as the queue arguments, as policies an operator sees and can tighten."""
    commands = "|".join(
        [
            roles._any_number(topology.partition_key(0)),
            *(
                q.name.replace(".", r"\.")
                for q in (topology.orders_queue(), topology.payments_queue())
            ),
        ]
    )
    delays = "|".join(
        roles._any_number(make(1)[1].name) for make in (topology.hold_delay, topology.order_delay)
    )
    return [
        {
            "vhost": vhost,
            "name": "flashsale-commands",
            "pattern": f"^({commands})$",
            "apply-to": "queues",
            "priority": 0,
            "definition": {
                "delivery-limit": topology.DELIVERY_LIMIT,
                "dead-letter-exchange": topology.DEAD_EXCHANGE.name,
                "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish",
            },
        },
        {
            "vhost": vhost,
            "name": "flashsale-delays",
            "pattern": f"^({delays})$",
            "apply-to": "queues",
            "priority": 0,
            "definition": {
                "dead-letter-exchange": topology.INVENTORY_EXCHANGE.name,
                "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish",
            },
        },
    ]


def default_settings() -> Settings:
    """The settings' own defaults, whatever the environment says (the file is the defaults')."""
    fields = ("partitions", "hold_ttl_seconds", "payment_window_seconds")
    return Settings(**{name: Settings.model_fields[name].default for name in fields})


def definitions(settings: Settings | None = None, vhost: str = "/") -> dict[str, Any]:
    """The definitions document of a deployment with these settings (partitions, TTLs)."""
    settings = settings or default_settings()
    rec = declared(settings)

    def queue(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "durable": spec["durable"],
            "auto_delete": False,
            "arguments": dict(sorted(spec["arguments"].items())),
        }

    return {
        "rabbit_version": RABBIT_VERSION,
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {
                "name": name,
                "vhost": vhost,
                "type": spec["type"],
                "durable": spec["durable"],
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for name, spec in sorted(rec.exchanges.items())
        ],
        "queues": [queue(name, spec) for name, spec in sorted(rec.queues.items())],
        "bindings": [
            {
                "source": source,
                "vhost": vhost,
                "destination": destination,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for source, destination, key in sorted(rec.bindings)
        ],
        "policies": _policies(vhost),
    }


def render(settings: Settings | None = None) -> str:
    """The file's text: stable order, two-space indent, a final newline."""
    return json.dumps(definitions(settings), indent=2) + "\n"


def main() -> None:
    """Write the definitions for the settings' defaults (8 partitions, 120 s holds, 900 s
    payment window — those of deploy/k8s and compose.yaml)."""
    text = render()
    for path in OUTPUTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"wrote {path.relative_to(PROJECT_ROOT)}\n")


if __name__ == "__main__":
    main()
