"""The common hold as the HTTP server takes it itself (FastLane.wire_hold, the server's
hold_at_once: JSON valid for HoldIn, no Idempotency-Key, a known storefront), in process:
its answers on the wire, and every request it leaves to the application's route."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shared.messages import HoldRefused, PlaceHolds
from shared.messages.stock_levels import Level
from tests.api.conftest import SHOP_KEY, Gateway, MakeGateway
from tests.api.fakes import decided, placed, placed_once

pytestmark = pytest.mark.api

JSON = (b"content-type", b"application/json")
_BODY = {"product_id": 7, "qty": 1}


class Wire:
    """One request handed to the server's hold path, and the answer it wrote."""

    def __init__(self, gw: Gateway, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.taken = gw.lane.wire_hold(headers, raw, self._answered)

    def _answered(self, status: int, rest: bytes) -> None:
        self.answer.set_result((status, rest))

    async def read(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        """The status, headers (lower-case names) and JSON body written after the status
        line and the server's own headers."""
        assert self.taken
        status, rest = await asyncio.wait_for(self.answer, 5)
        head, _, body = rest.partition(b"\r\n\r\n")
        lines = [line.split(b": ", 1) for line in head.split(b"\r\n")]
        headers = {name.decode().lower(): value.decode() for name, value in lines}
        assert int(headers["content-length"]) == len(body)
        return status, headers, json.loads(body)


async def _problem(wire: Wire, status: int, code: str) -> tuple[dict[str, str], dict[str, Any]]:
    got, headers, body = await wire.read()
    assert (got, body["code"], body["status"]) == (status, code, status), body
    assert headers["content-type"] == "application/problem+json"
    assert headers["cache-control"] == "no-store"
    assert body["type"] == f"urn:flashsale:problem:{code}" and body["detail"]
    return headers, body


async def test_a_placed_hold_is_written_201_with_its_location_and_no_store(
    gateway: Gateway,
) -> None:
    gateway.bus.answer(PlaceHolds, placed())
    status, headers, body = await Wire(gateway, {**_BODY, "qty": 2}, [JSON]).read()
    assert status == 201
    assert headers["location"] == f"/api/holds/{body['hold_id']}"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    assert (body["product_id"], body["qty"], body["status"], body["order_id"]) == (
        7,
        2,
        "active",
        None,
    )
    [envelope] = gateway.bus.of(PlaceHolds)
    assert str(envelope.holds[0].hold_id) == body["hold_id"]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (_BODY, []),  # not said to be JSON
        (_BODY, [(b"content-type", b"text/plain")]),
        (_BODY, [JSON, (b"idempotency-key", b"k-1")]),
        ({"product_id": 7, "qty": 0}, [JSON]),
        ({"product_id": 7, "qty": 11}, [JSON]),  # past the deployment's limit
        ({"product_id": 7, "qty": 1, "customer_id": "al ice"}, [JSON]),
        (b"{not json", [JSON]),
    ],
)
async def test_what_the_server_does_not_take_goes_to_the_route(
    gateway: Gateway, body: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    wire = Wire(gateway, body, headers)
    assert wire.taken is False
    assert gateway.bus.sent == []


async def test_an_unknown_storefront_key_goes_to_the_route_for_its_401(keyed: Gateway) -> None:
    for token in (None, b"Bearer not-a-key", b"Basic " + SHOP_KEY.encode()):
        headers = [JSON] if token is None else [JSON, (b"authorization", token)]
        assert Wire(keyed, _BODY, headers).taken is False
    keyed.bus.answer(PlaceHolds, placed())
    known = Wire(keyed, _BODY, [JSON, (b"authorization", f"Bearer {SHOP_KEY}".encode())])
    assert (await known.read())[0] == 201
    assert keyed.bus.of(PlaceHolds)[0].holds[0].client_id == "shop"


async def test_a_refusal_of_the_partition_is_written_as_its_problem(gateway: Gateway) -> None:
    gateway.bus.answer(PlaceHolds, decided(HoldRefused(reason="insufficient_stock", available=2)))
    _, body = await _problem(Wire(gateway, _BODY, [JSON]), 409, "insufficient_stock")
    assert body["available"] == 2 and body["instance"] == "/api/holds"


async def test_an_undecidable_product_is_written_503_with_retry_after_30(gateway: Gateway) -> None:
    gateway.bus.answer(PlaceHolds, decided(HoldRefused(reason="product_undecidable")))
    headers, _ = await _problem(Wire(gateway, _BODY, [JSON]), 503, "product_unavailable")
    assert headers["retry-after"] == "30"


async def test_no_decision_in_time_is_written_503_unavailable(gateway: Gateway) -> None:
    gateway.bus.answer(PlaceHolds, decided(None))
    headers, body = await _problem(Wire(gateway, _BODY, [JSON]), 503, "unavailable")
    assert headers["retry-after"] == "1" and "was not placed" in body["detail"]


async def test_sold_out_is_written_at_once_from_the_stock_levels(gateway: Gateway) -> None:
    snapshot = gateway.requester.snapshot
    snapshot.apply_levels({7: Level(available=0, version=3)}, snapshot.wall())
    wire = Wire(gateway, _BODY, [JSON])
    assert wire.answer.done()  # before any round trip
    _, body = await _problem(wire, 409, "insufficient_stock")
    assert body["available"] == 0
    assert gateway.bus.sent == []


async def test_holds_past_those_waiting_for_a_partition_are_written_429_overloaded(
    make_gateway: MakeGateway,
) -> None:
    async with make_gateway(hold_batch_max_waiting=1, hold_batches_in_flight=1) as gw:
        release = asyncio.Event()
        gw.bus.answer(PlaceHolds, placed_once(release))
        first = Wire(gw, _BODY, [JSON])
        await gw.bus.first_sent()  # its envelope is out, unanswered
        second = Wire(gw, _BODY, [JSON])  # waits behind it
        headers, body = await _problem(Wire(gw, _BODY, [JSON]), 429, "overloaded")
        assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "200")
        assert body["retry_after_ms"] == 200
        release.set()
        assert [(await w.read())[0] for w in (first, second)] == [201, 201]


async def test_one_customer_asking_too_fast_is_written_429_rate_limited(
    make_gateway: MakeGateway,
) -> None:
    async with make_gateway(customer_rate_per_second=0.2, customer_rate_burst=2) as gw:
        gw.bus.answer(PlaceHolds, placed())
        body = {**_BODY, "customer_id": "fast-1"}
        statuses = [(await Wire(gw, body, [JSON]).read())[0] for _ in range(2)]
        headers, _ = await _problem(Wire(gw, body, [JSON]), 429, "rate_limited")
        assert statuses == [201, 201] and int(headers["retry-after"]) >= 1
        calm = Wire(gw, {**_BODY, "customer_id": "calm-1"}, [JSON])
        assert (await calm.read())[0] == 201
        assert len(gw.bus.of(PlaceHolds)) == 3
