"""Product pages written by the HTTP server itself, without an ASGI cycle, over raw sockets.

The answer must be the application's own (same status, headers and body), in turn on a
connection that pipelines, and leave the connection in step: a body sent with the GET is
dropped, `Connection: close` closes, a 304 carries no body.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
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


class _Unclosed(io.BufferedReader):
    """One reader for every answer of a connection: an answer read whole does not close it."""

    def close(self) -> None:
        pass


class _Answers:
    """Answers read one after another from one connection (pipelined ones included)."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = _Unclosed(socket.SocketIO(sock, "rb"))

    def makefile(self, *_: Any) -> Any:
        return self._file

    def next(self, method: str = "GET") -> rawhttp.Answer:
        response = http.client.HTTPResponse(self, method=method)  # type: ignore[arg-type]
        response.begin()
        return rawhttp.Answer(response.status, response.headers, response.read())


def _headers(answer: rawhttp.Answer) -> dict[str, str]:
    return {k.lower(): v for k, v in answer.headers.items() if k.lower() not in PER_ANSWER}


def test_the_servers_answer_is_the_applications_answer(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, []))
        at_once = _Answers(sock).next()
    with rawhttp.connect(_port(lab)) as sock:  # HTTP/1.0 goes through the application
        sock.sendall(f"GET {page} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        routed = _Answers(sock).next()
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
        answers = _Answers(sock)
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
        answers = _Answers(sock)
        assert [answers.next().status, answers.next().status] == [200, 200]


def test_a_matching_etag_gets_304_without_a_body_and_the_connection_goes_on(
    lab: System, product: dict[str, Any]
) -> None:
    page = f"/api/products/{product['id']}"
    with rawhttp.connect(_port(lab)) as sock:
        sock.sendall(rawhttp.request_head("GET", page, []))
        answers = _Answers(sock)
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
        answer = _Answers(sock).next()
        assert answer.status == 200 and answer.headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed after the answer
