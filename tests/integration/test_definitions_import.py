"""The committed definitions import into a real broker, and the processes' own declaration
accepts what they created (no PRECONDITION_FAILED: same names, same arguments)."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest

from deploy import definitions
from shared import roles
from tests.harness import new_vhost, with_vhost
from tests.servers import ServerSet

pytestmark = pytest.mark.integration


def test_imported_definitions_are_what_every_process_declares(servers: ServerSet) -> None:
    assert servers.management_url, "needs the broker's management API"
    auth = servers.management_auth
    vhost = new_vhost(servers.management_url, auth, auth[0])
    api = servers.management_url.rstrip("/") + "/api"
    doc = json.loads(definitions.OUTPUTS[0].read_text())
    r = httpx.post(f"{api}/definitions/{quote(vhost, safe='')}", json=doc, auth=auth, timeout=30)
    assert r.status_code in (200, 201, 204), r.text
    try:
        settings = definitions.default_settings()
        roles.run_sync(
            roles.declare_topology(
                with_vhost(servers.amqp_url, vhost),
                settings.partitions,
                settings.hold_ttl_seconds,
                settings.payment_window_seconds,
            )
        )
        queues = httpx.get(f"{api}/queues/{quote(vhost, safe='')}", auth=auth, timeout=10).json()
        assert sorted(q["name"] for q in queues) == sorted(q["name"] for q in doc["queues"])
        policies = httpx.get(f"{api}/policies/{quote(vhost, safe='')}", auth=auth, timeout=10)
        assert {p["name"] for p in policies.json()} == {p["name"] for p in doc["policies"]}
    finally:
        httpx.delete(f"{api}/vhosts/{quote(vhost, safe='')}", auth=auth, timeout=30)
