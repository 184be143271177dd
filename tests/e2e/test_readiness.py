"""Readiness follows the broker: 503 while it is stopped, 200 again once it is back."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from tests.harness import System
from tests.servers import ServerSet, local_servers

pytestmark = pytest.mark.e2e


def _ready_status(system: System) -> int:
    return httpx.get(f"{system.base_url}/readyz", timeout=5).status_code


def _wait_status(system: System, status: int, timeout: float = 40) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{system.base_url}/readyz", timeout=5)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_readiness_is_503_while_the_broker_is_stopped(servers: ServerSet) -> None:
    broker, home = local_servers("ready")  # a broker of its own: this test stops it
    gateway = None
    try:
        broker.prepare_home()
        broker.start_rabbit()
        gateway = System(broker.amqp_url, servers.database_url, workers={}).start()
        assert _ready_status(gateway) == 200

        broker.stop_rabbit()
        r = _wait_status(gateway, 503)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["checks"]["broker"] != "ok" and r.json()["checks"]["database"] == "ok"
        hold = httpx.post(
            f"{gateway.base_url}/api/holds", json={"product_id": 1, "qty": 1}, timeout=15
        )
        assert hold.status_code == 503 and hold.json()["code"] == "unavailable"
        assert hold.headers["Retry-After"]

        broker.start_rabbit()
        assert _wait_status(gateway, 200, timeout=60).status_code == 200
    finally:
        if gateway is not None:
            gateway.stop()
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)
