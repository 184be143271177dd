"""`flashsale webhook send` against the running gateway: a provider's event, signed and answered."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from cli.exits import ExitCode
from tests.cli import invoke
from tests.harness import WEBHOOK_SECRETS, System, wait_for
from tests.helpers import make_product

pytestmark = pytest.mark.e2e


async def test_send_signs_and_posts_a_payment_and_shows_the_answer(
    client: httpx.AsyncClient,
    system: System,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    product = await make_product(client, stock=2)
    hold = (await client.post("/api/holds", json={"product_id": product["id"], "qty": 1})).json()
    order = (await client.post("/api/orders", json={"hold_id": hold["hold_id"]})).json()
    event = ["webhook", "send", "--url", system.base_url, "--order-id", order["order_id"]]
    event += ["--amount-cents", str(order["amount_cents"])]

    # the second of our secrets still verifies (rotation), as a provider not yet moved signs
    key = f"cli-{uuid.uuid4()}"
    code, out, err = invoke(
        capsys, monkeypatch, *event, "--idempotency-key", key, "--secret", WEBHOOK_SECRETS[1]
    )
    assert code == 0, out + err
    # 202 queued when the worker is slower than the gateway's deadline (a loaded machine)
    assert re.search(r'< 200 OK\n.*"result": "applied"|< 202 Accepted', out, re.S), out
    assert f'"idempotency_key": "{key}"' in out and "> X-Signature: t=" in out

    async def is_paid() -> bool:
        r = await client.get(f"/api/orders/{order['order_id']}")
        return bool(r.json()["status"] == "paid")

    await wait_for(is_paid, timeout=20)

    code, out, err = invoke(capsys, monkeypatch, *event, "--secret", "not-ours")
    assert code == ExitCode.REFUSED, out + err
    assert "< 401 Unauthorized" in out and "invalid_signature" in out
