"""Product pages on plain values: versions order the news, a lost feed serves nothing, the
answer's bytes are the contract's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway import pages
from gateway.schemas import ProductOut
from gateway.snapshot import StockSnapshot
from shared.messages import Level
from tests.unit.test_edge_rules import NOW, Clock

pytestmark = pytest.mark.unit


def _row(available: int, version: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "name": "Sneaker «limited»",
        "price_cents": 12900,
        "stock_total": 10,
        "available": available,
        "max_per_customer": None,
        "sale_starts_at": None,
        "sale_ends_at": NOW + timedelta(hours=1),
        "version": version,
        **fields,
    }


def _level(available: int, version: int | None) -> dict[int, Level]:
    return {7: Level(available=available, stock_total=10, version=version)}


def _live(clock: Clock | None = None) -> StockSnapshot:
    snapshot = StockSnapshot(max_age=1.0, clock=clock or Clock())
    snapshot.resume()
    return snapshot


def _page_available(snapshot: StockSnapshot) -> int | None:
    found = snapshot.page(7)
    return None if found is None else found[1].level.available


def test_a_larger_version_wins_whatever_the_order_of_arrival() -> None:
    snapshot = _live()
    snapshot.install(_row(8, 2), snapshot.reading())
    snapshot.apply_levels(_level(9, 1), NOW + timedelta(seconds=5))  # late, though "newer" time
    assert _page_available(snapshot) == 8
    snapshot.apply_levels(_level(5, 3), NOW - timedelta(seconds=5))
    assert _page_available(snapshot) == 5
    snapshot.install(_row(8, 2), snapshot.reading())  # a slow database read: older news
    assert _page_available(snapshot) == 5


def test_the_same_version_again_confirms_the_entry() -> None:
    clock = Clock()
    snapshot = _live(clock)
    snapshot.install(_row(4, 6), snapshot.reading())
    clock.t += 0.8
    snapshot.apply_levels(_level(4, 6), NOW)
    clock.t += 0.8  # 1.6 s after the first news, 0.8 s after the confirmation
    assert _page_available(snapshot) == 4
    clock.t += 0.3
    assert snapshot.page(7) is None  # not confirmed within its age: ask the database


def test_nothing_is_served_or_kept_without_a_running_feed() -> None:
    snapshot = StockSnapshot()
    snapshot.install(_row(4, 1), snapshot.reading())
    assert snapshot.page(7) is None  # not listening yet
    snapshot.resume()
    began = snapshot.reading()
    snapshot.forget()  # the feed is lost while the read is under way
    snapshot.resume()
    snapshot.install(_row(4, 1), began)
    assert snapshot.page(7) is None  # a read begun before the loss vouches for nothing
    snapshot.install(_row(4, 1), snapshot.reading())
    assert _page_available(snapshot) == 4
    snapshot.forget()
    assert snapshot.page(7) is None


def test_levels_alone_are_no_page_until_the_product_facts_are_known() -> None:
    snapshot = _live()
    snapshot.apply_levels(_level(3, 2), NOW)
    assert snapshot.page(7) is None  # name and price only come from the database
    assert snapshot.refusal(7, 5, None, NOW) == 3  # still enough to answer sold out
    snapshot.install(_row(3, 2), snapshot.reading())
    snapshot.invalidate(7)
    assert snapshot.page(7) is None


def test_a_page_is_what_the_contract_says_and_encoded_once_per_version() -> None:
    snapshot = _live()
    snapshot.install(_row(4, 6), snapshot.reading())
    found = snapshot.page(7)
    assert found is not None
    cached = pages.of_entry(*found[:2])
    body, tag = cached.body, cached.tag
    assert pages.of_entry(*found[:2]) is cached
    assert (b"content-length", b"%d" % len(body)) in cached.ok
    out = ProductOut.model_validate_json(body)
    assert (out.available, out.version, out.name) == (4, 6, "Sneaker «limited»")
    assert out.sale_ends_at == NOW + timedelta(hours=1)
    assert tag == b'W/"6"'
    assert ProductOut.model_validate_json(pages.of_row(_row(4, 6), NOW)).as_of == NOW


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (b'W/"6"', True),
        (b'"6"', True),  # weak comparison
        (b'"5", W/"6"', True),
        (b"*", True),
        (b'W/"7"', False),
        (b"", False),
        (None, False),
    ],
)
def test_if_none_match_compares_weakly(header: bytes | None, matches: bool) -> None:
    assert pages.not_modified(header, b'W/"6"') is matches


@pytest.mark.parametrize(
    ("cache_control", "pragma", "exact"),
    [
        (b"no-cache", None, True),
        (b"max-age=0, No-Cache", None, True),
        (None, b"no-cache", True),
        (b"max-age=0", None, False),  # a browser's reload: a second-old page is fine
        (b"no-store", None, False),
        (None, None, False),
    ],
)
def test_an_exact_read_is_asked_with_no_cache(
    cache_control: bytes | None, pragma: bytes | None, exact: bool
) -> None:
    assert pages.exact_asked(cache_control, pragma) is exact


async def test_the_fast_lanes_201_is_byte_for_byte_what_hold_out_writes() -> None:
    import uuid

    from gateway.fastlane import _created
    from gateway.schemas import HoldOut
    from shared.messages import HoldPlaced

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    for expires in (NOW, NOW + timedelta(microseconds=123456)):
        reply = HoldPlaced(
            hold_id=uuid.uuid4(), product_id=7, qty=2, expires_at=expires, available=3
        )
        sent.clear()
        await _created(send, reply)
        model = HoldOut(
            hold_id=reply.hold_id,
            product_id=7,
            qty=2,
            status="active",
            expires_at=expires,
            order_id=None,
        )
        assert sent[1]["body"] == model.model_dump_json().encode()
        headers = dict(sent[0]["headers"])
        assert sent[0]["status"] == 201
        assert headers[b"location"] == f"/api/holds/{reply.hold_id}".encode()
        assert headers[b"content-length"] == b"%d" % len(sent[1]["body"])
