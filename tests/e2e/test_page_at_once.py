"""Answers written by the HTTP server itself, without an ASGI cycle, over raw sockets: product
pages from the snapshot, and the common hold (taken from the protocol, answered when its
partition replies).

The answer must be the application's own (same status, headers and body), in turn on a
connection that pipelines, and leave the connection in step: a body sent with the GET is
dropped, `Connection: close` closes, a 304 carries no body; a hold the server does not take
(a key, a body the model refuses, `Connection: close`) is the route's, with its body.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import rawhttp
from tests.harness import ADMIN_TOKEN, System, isolated_system
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e

HIT = "flashsale-gateway; hit"
#: Headers that differ between two answers of the same version by their nature.
PER_ANSWER = {"date", "age", "connection"}


@pytest.fixture(scope="module")
def lab(servers: ServerSet) -> Iterator[System]:
    workers = {"inventory": 1, "orders": 1, "payments": 1}
    overrides = {"FLASHSALE_HOLD_TTL_SECONDS": "60"}
    with isolated_system(servers, workers=workers, overrides=overrides) as (system, _, _):
        yield system


@pytest.fixture
def product(lab: System) -> dict[str, Any]:
    """A product this gateway process serves from its snapshot."""
    with httpx.Client(base_url=lab.base_url, timeout=30) as c:
        r = c.post(
            "/api/admin/products",
            json={"name": f"at-once-{uuid.uuid4().hex[:10]}", "price_cents": 100, "stock": 10},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        page = f"/api/products/{made['id']}"
        deadline = time.monotonic() + 10
        while c.get(page).headers.get("cache-status") != HIT:
            assert time.monotonic() < deadline, "the product never came from the snapshot"
            time.sleep(0.05)
        return made


def _port(lab: System) -> int:
    port = urllib.parse.urlsplit(lab.base_url).port
    assert port is not None
    return port


def _headers(answer: rawhttp.Answer) -> dict[str, str]:
    return {k.lower(): v for k, v in answer.headers.items() if k.lower() not in PER_ANSWER}


def test_the_servers_answer_is_the_applications_answer(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, []))
        at_once = rawhttp.Answers(sock).next()
    with rawhttp.connect(_port(lab)) as sock:  # HTTP/1.0 goes through the application
        sock.sendall(f"GET {page} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        routed = rawhttp.Answers(sock).next()
    assert at_once.status == routed.status == 200
    assert at_once.body == routed.body
    assert _headers(at_once) == _headers(routed)
    assert _headers(at_once)["cache-status"] == HIT
    assert json.loads(at_once.body)["available"] == 10
    assert {"date", "age"} <= {k.lower() for k in at_once.headers}


def test_pipelined_requests_are_answered_in_order_and_a_hold_shows_in_the_next_page(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    body = json.dumps({"product_id": product["id"], "qty": 2}).encode()
    hold = rawhttp.request_head(
        "POST",
        "/api/holds",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, []) + hold + body)
        sock.sendall(rawhttp.request_head("GET", page, []))
        answers = rawhttp.Answers(sock)
        first, placed, after = answers.next(), answers.next("POST"), answers.next()
    assert first.status == 200 and first.json()["available"] == 10
    assert placed.status == 201, placed.body
    assert after.status == 200 and after.json()["available"] == 8


def test_a_body_sent_with_the_get_is_dropped_and_the_connection_goes_on(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, [("Content-Length", "5")]) + b"hello")
        sock.sendall(rawhttp.request_head("GET", page, []))
        answers = rawhttp.Answers(sock)
        assert [answers.next().status, answers.next().status] == [200, 200]


def test_a_matching_etag_gets_304_without_a_body_and_the_connection_goes_on(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, []))
        answers = rawhttp.Answers(sock)
        tag = answers.next().headers["etag"]
        sock.sendall(rawhttp.request_head("GET", page, [("If-None-Match", tag)]))
        sock.sendall(rawhttp.request_head("GET", page, []))
        same, again = answers.next(), answers.next()
    assert same.status == 304 and same.body == b"" and same.headers["etag"] == tag
    assert "content-length" not in {k.lower() for k in same.headers}
    assert again.status == 200 and again.headers["etag"] == tag


def test_connection_close_gets_its_answer_and_the_close(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, [("Connection", "close")]))
        answer = rawhttp.Answers(sock).next()
        assert answer.status == 200 and answer.headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed after the answer


def _hold(body: dict[str, Any] | bytes, headers: list[tuple[str, str]] | None = None) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [("Content-Type", "application/json"), ("Content-Length", str(len(raw)))]
    return rawhttp.request_head("POST", "/api/holds", head + (headers or [])) + raw


def _hold_headers(answer: rawhttp.Answer) -> dict[str, str]:
    """Its headers but those that differ by nature (the date, the hold's own URL)."""
    return {k: v for k, v in _headers(answer).items() if k != "location"}


def test_a_hold_taken_by_the_server_is_answered_as_the_route_answers(
    lab: System, product: dict[str, Any]
) -> None:
    wanted = {"product_id": product["id"], "qty": 1}
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(_hold(wanted))  # no key: the server takes it
        sock.sendall(_hold(wanted, [("Idempotency-Key", f"k-{uuid.uuid4()}")]))  # the route's
        answers = rawhttp.Answers(sock)
        taken, routed = answers.next("POST"), answers.next("POST")
    assert taken.status == routed.status == 201, (taken.body, routed.body)
    assert _hold_headers(taken) == _hold_headers(routed)
    assert _hold_headers(taken)["cache-control"] == "no-store"
    assert taken.headers["location"] == f"/api/holds/{taken.json()['hold_id']}"
    assert list(taken.json()) == list(routed.json())
    same = {k: v for k, v in taken.json().items() if k not in {"hold_id", "expires_at"}}
    assert same == {k: v for k, v in routed.json().items() if k not in {"hold_id", "expires_at"}}
    with httpx.Client(base_url=lab.base_url, timeout=30) as c:  # placed, as it said
        assert c.get(taken.headers["location"]).json()["status"] == "active"
        assert c.get(f"/api/products/{product['id']}?consistent=true").json()["available"] == 8


def test_a_refusal_the_server_answers_is_the_routes_refusal(lab: System) -> None:
    with httpx.Client(base_url=lab.base_url, timeout=30) as c:
        r = c.post(
            "/api/admin/products",
            json={"name": f"none-{uuid.uuid4().hex[:10]}", "price_cents": 100, "stock": 0},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert r.status_code == 201, r.text
    wanted = {"product_id": r.json()["id"], "qty": 1}
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(_hold(wanted))
        sock.sendall(_hold(wanted, [("Idempotency-Key", f"k-{uuid.uuid4()}")]))
        answers = rawhttp.Answers(sock)
        taken, routed = answers.next("POST"), answers.next("POST")
    assert taken.status == routed.status == 409
    assert taken.body == routed.body
    assert _headers(taken) == _headers(routed)
    assert taken.json()["code"] == "insufficient_stock"


def test_a_hold_the_model_refuses_is_the_routes_422_and_the_connection_goes_on(
    lab: System, product: dict[str, Any]
) -> None:
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(_hold(b'{"product_id": %d, "qty": true}' % product["id"]))
        sock.sendall(_hold({"product_id": product["id"], "qty": 1}))
        answers = rawhttp.Answers(sock)
        refused, placed = answers.next("POST"), answers.next("POST")
    assert refused.status == 422 and refused.json()["code"] == "validation_error"
    assert "qty" in refused.json()["detail"]  # the route read the body it was handed
    assert placed.status == 201


def test_requests_pipelined_behind_a_taken_hold_are_answered_in_order(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}?consistent=true"
    wanted = {"product_id": product["id"], "qty": 1}
    with rawhttp.connect(_port(lab)) as sock:
        # one write: the second hold and the page arrive while the first is being answered
        sock.sendall(_hold(wanted) + _hold(wanted) + rawhttp.request_head("GET", page, []))
        answers = rawhttp.Answers(sock)
        first, second, after = answers.next("POST"), answers.next("POST"), answers.next()
    assert [first.status, second.status, after.status] == [201, 201, 200]
    assert first.json()["hold_id"] != second.json()["hold_id"]
    assert after.json()["available"] == 8


def test_a_hold_with_connection_close_is_answered_and_closed(
    lab: System, product: dict[str, Any]
) -> None:
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(_hold({"product_id": product["id"], "qty": 1}, [("Connection", "close")]))
        answer = rawhttp.Answers(sock).next("POST")
        assert answer.status == 201 and answer.headers["connection"] == "close"
        assert sock.recv(1) == b""


def test_a_client_that_leaves_before_its_hold_is_answered_harms_no_one(
    lab: System, product: dict[str, Any]
) -> None:
    for _ in range(20):
        with rawhttp.connect(_port(lab)) as sock:
            sock.sendall(_hold({"product_id": product["id"], "qty": 1}))  # and gone
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(_hold({"product_id": product["id"], "qty": 1}))
        sock.sendall(rawhttp.request_head("GET", "/healthz", []))
        answers = rawhttp.Answers(sock)
        assert answers.next("POST").status in (201, 409)  # 409: the ones who left took the 10
        assert answers.next().status == 200
