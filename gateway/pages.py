"""Product answers, as bytes: one encoding per product version, shared by every reader (the
reads behind them: gateway.product_reads).

`GET /api/products/{id}` is the most frequent request of a sale (shoppers refreshing the page).
The gateway builds its body itself, once per version the process sees, and never re-validates
it; the fast lane (gateway.fastlane) and the route (gateway.routes.products) answer with these
same bytes and headers. The database is read for an exact read asked for (always a read of its
own, begun after the request came), and for a product the snapshot does not hold (one read per
product at a time, whoever is waiting for it); a product read often is confirmed from the
database in the background before its entry expires, so a quiet product's readers never all
miss at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.snapshot import Entry


@dataclass(frozen=True)
class Cached:
    """An entry's answer, made once: what every reader of this version gets."""

    body: bytes
    tag: bytes
    current_at: float
    ok: list[tuple[bytes, bytes]]
    not_modified: list[tuple[bytes, bytes]]
    #: the same headers as they go on the wire (`name: value\r\n` each), for the server
    wire_ok: bytes = b""
    wire_not_modified: bytes = b""


Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]

#: RFC 9211 Cache-Status of an answer: from this process's snapshot, or from the database
#: because the client asked for an exact read, or because the snapshot could not vouch for it.
FROM_SNAPSHOT = b"flashsale-gateway; hit"
ASKED_EXACT = b"flashsale-gateway; fwd=request"
NOT_HELD = b"flashsale-gateway; fwd=miss"
#: What an edge cache may do with a product answer: keep it for a second.
SHARED_SECOND = b"public, max-age=1"
#: An exact read asked for: may be stored, never reused unchecked.
REVALIDATE = b"no-cache"
JSON = (b"content-type", b"application/json")


def iso(value: datetime | None) -> str | None:
    """A timestamp as the rest of the API writes it (UTC, `Z`)."""
    if value is None:
        return None
    if value.tzinfo is None:  # asyncpg reads a stored -infinity/infinity as naive min/max
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def etag(version: int) -> bytes:
    """Weak: one version of the product may be written with another `as_of`."""
    return b'W/"%d"' % version


def body(
    facts: Mapping[str, Any],
    stock_total: int,
    available: int,
    version: int,
    as_of: datetime,
) -> bytes:
    """The product's JSON, in the field order of ProductOut."""
    return json.dumps(
        {
            "id": facts["id"],
            "name": facts["name"],
            "price_cents": facts["price_cents"],
            "stock_total": stock_total,
            "available": available,
            "max_per_customer": facts["max_per_customer"],
            "sale_starts_at": iso(facts["sale_starts_at"]),
            "sale_ends_at": iso(facts["sale_ends_at"]),
            "version": version,
            "as_of": iso(as_of),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def of_row(row: Mapping[str, Any], as_of: datetime) -> bytes:
    """A product read from the database."""
    return body(row, row["stock_total"], row["available"], row["version"], as_of)


def of_entry(facts: Mapping[str, Any], entry: Entry) -> Cached:
    """A product from the snapshot, encoded once per entry (until the next news of it): body,
    ETag, the wall time it is current at, and the headers of a 200 and of a 304 but `Age`."""
    if entry.answer is None:
        level = entry.level
        assert level.stock_total is not None and level.version is not None
        encoded = body(facts, level.stock_total, level.available, level.version, entry.confirmed_at)
        tag = etag(level.version)
        common = [
            (b"etag", tag),
            (b"cache-control", SHARED_SECOND),
            (b"cache-status", FROM_SNAPSHOT),
        ]
        ok = [JSON, (b"content-length", b"%d" % len(encoded)), *common]
        entry.answer = Cached(
            encoded,
            tag,
            entry.confirmed_at.timestamp(),
            ok,
            common,
            wire(ok),
            wire(common),
        )
    answer: Cached = entry.answer
    return answer


def wire(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Headers as an HTTP/1.1 answer carries them."""
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)


def age(current_at: float) -> bytes:
    """The Age header: whole seconds since the answer was known to be current."""
    seconds = time.time() - current_at
    return b"0" if seconds < 1 else b"%d" % seconds


def not_modified(if_none_match: bytes | None, tag: bytes) -> bool:
    """If-None-Match matches `tag` by weak comparison (RFC 9110 §13.1.2), or is `*`."""
    if not if_none_match:
        return False
    wanted = tag.removeprefix(b"W/")
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate == b"*" or candidate.removeprefix(b"W/") == wanted:
            return True
    return False


def page_headers(
    tag: bytes, cache_control: bytes, current_at: float, status: bytes
) -> list[tuple[bytes, bytes]]:
    """ETag, Cache-Control, Age and Cache-Status of a product answer."""
    return [
        (b"etag", tag),
        (b"cache-control", cache_control),
        (b"age", age(current_at)),
        (b"cache-status", status),
    ]


def exact_asked(cache_control: bytes | None, pragma: bytes | None) -> bool:
    """The request's own word for "not from a cache": `Cache-Control: no-cache` (or the
    HTTP/1.0 `Pragma: no-cache`)."""
    for value in (cache_control, pragma):
        if value and any(d.strip().lower() == b"no-cache" for d in value.split(b",")):
            return True
    return False
