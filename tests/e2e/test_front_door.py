"""The gateway's front door: size, time and connection limits, safe headers, hidden internals."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.localservers import free_port
from shared.settings import MIN_SECRET_LENGTH
from tests.harness import System
from tests.rawhttp import connect, read_answer, request_head, wait_closed
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 8
MAX_BODY = 64 * 1024
MARGIN = 1.5  # seconds a loaded test machine may add to a deadline


@pytest.fixture(scope="module")
def door(servers: ServerSet) -> Iterator[System]:
    """A gateway alone (no worker is needed to refuse), with a short header deadline."""
    system = System.on(
        servers,
        workers={},
        overrides={
            "FLASHSALE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "FLASHSALE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "FLASHSALE_MAX_BODY_BYTES": str(MAX_BODY),
        },
    )
    try:
        yield system.start()
    finally:
        system.stop()


@pytest.fixture(scope="module")
def production(servers: ServerSet) -> Iterator[tuple[System, int]]:
    """A production gateway with strong secrets and a metrics port of its own."""
    metrics_port = free_port()
    strong = "p" * MIN_SECRET_LENGTH
    system = System.on(
        servers,
        workers={},
        overrides={
            "FLASHSALE_ENV": "production",
            "FLASHSALE_ADMIN_TOKEN": "admin-" + strong,
            "FLASHSALE_WEBHOOK_SECRETS": "hook-" + strong,
            "FLASHSALE_STOREFRONT_KEYS": "shop:key-" + strong,
            "FLASHSALE_METRICS_PORT": str(metrics_port),
        },
    )
    try:
        yield system.start(), metrics_port
    finally:
        system.stop()


def assert_refusal(sock: socket.socket, status: int, code: str, method: str = "GET") -> str:
    """The answer is a problem+json refusal that closes the connection; returns its detail."""
    answer = read_answer(sock, method)
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    assert answer.json()["code"] == code and answer.json()["status"] == status
    assert wait_closed(sock, timeout=10)[1] == b""
    return str(answer.json()["detail"])


def auth_failures(system: System, kind: str) -> float:
    text = httpx.get(f"{system.base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "flashsale_auth_failures_total" and sample.labels["kind"] == kind:
                return sample.value
    return 0.0


def test_a_one_megabyte_header_is_refused_with_431(door: System) -> None:
    with connect(door.http_port) as sock:
        sock.sendall(request_head("GET", "/healthz", [("X-Big", "a" * 1024 * 1024)]))
        assert_refusal(sock, 431, "header_too_large")


def test_five_thousand_small_headers_are_refused_with_431(door: System) -> None:
    head = request_head("GET", "/healthz", [("x", "1")] * 5000)
    assert len(head) < 32 * 1024  # within the byte limit: the count is what is refused
    with connect(door.http_port) as sock:
        sock.sendall(head)
        assert "headers" in assert_refusal(sock, 431, "header_too_large")


def test_a_10_mb_content_length_is_refused_with_413_before_any_body_byte_is_sent(
    door: System,
) -> None:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(10 * 1024 * 1024))]
    with connect(door.http_port) as sock:
        sock.sendall(request_head("POST", "/api/payments/webhook", headers))
        start = time.monotonic()
        sock.settimeout(5)  # not one body byte is ever sent: the answer must come without it
        assert_refusal(sock, 413, "body_too_large", "POST")
        assert time.monotonic() - start < 2


def test_a_chunked_webhook_body_past_the_limit_is_refused_before_the_signature_check(
    door: System,
) -> None:
    before = auth_failures(door, "webhook_signature")
    headers = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    chunk = b"x" * 16 * 1024
    with connect(door.http_port) as sock:
        sock.sendall(request_head("POST", "/api/payments/webhook", headers))
        for _ in range(MAX_BODY // len(chunk) + 1):  # one chunk past the limit, never the end
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.settimeout(5)
        assert_refusal(sock, 413, "body_too_large", "POST")
    assert auth_failures(door, "webhook_signature") == before


def test_a_chunked_body_within_the_limit_reaches_the_route(door: System) -> None:
    body = b'{"idempotency_key": "k", "order_id": "x", "status": "success"}'
    headers = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    with connect(door.http_port) as sock:
        sock.sendall(request_head("POST", "/api/payments/webhook", headers))
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        answer = read_answer(sock, "POST")
    assert answer.status == 401 and answer.json()["code"] == "invalid_signature"


def test_a_client_trickling_its_headers_is_cut_off_at_the_header_deadline(door: System) -> None:
    trickle = iter(request_head("GET", "/healthz", [("X-Slow", "y" * 200)]))
    with connect(door.http_port) as sock:
        start, first_answer_byte, got = time.monotonic(), None, b""
        sock.settimeout(0.2)
        while time.monotonic() - start < HEADER_TIMEOUT + 5:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                sock.send(bytes([next(trickle)]))  # never the whole head
                continue
            if not chunk:
                break
            first_answer_byte = first_answer_byte or time.monotonic() - start
            got += chunk
    assert first_answer_byte is not None, "never answered"
    assert HEADER_TIMEOUT * 0.9 <= first_answer_byte <= HEADER_TIMEOUT + MARGIN
    assert got.startswith(b"HTTP/1.1 408 ") and b'"code": "header_timeout"' in got


def test_a_keep_alive_client_trickling_its_next_request_is_cut_off_at_the_deadline(
    door: System,
) -> None:
    with connect(door.http_port) as sock:
        sock.sendall(request_head("GET", "/healthz", []))
        assert read_answer(sock).status == 200
        answered = time.monotonic()
        sock.settimeout(0.2)
        got = b""
        for byte in request_head("GET", "/healthz", [("X-Slow", "y" * 200)]):
            try:
                got = sock.recv(65536)
                break
            except TimeoutError:
                sock.send(bytes([byte]))
        elapsed = time.monotonic() - answered
    assert got.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + MARGIN


def test_a_keep_alive_client_asking_within_the_deadline_is_served_for_longer_than_it(
    door: System,
) -> None:
    with connect(door.http_port) as sock:
        start = time.monotonic()
        while time.monotonic() - start < HEADER_TIMEOUT * 3:
            sock.sendall(request_head("GET", "/healthz", []))
            assert read_answer(sock).status == 200
            time.sleep(HEADER_TIMEOUT * 0.6)


def test_an_idle_connection_that_sends_nothing_is_closed_at_the_header_deadline(
    door: System,
) -> None:
    with connect(door.http_port) as sock:
        elapsed, got = wait_closed(sock, timeout=HEADER_TIMEOUT + 5)
    assert got == b""
    assert HEADER_TIMEOUT * 0.9 <= elapsed <= HEADER_TIMEOUT + MARGIN


def test_connections_beyond_the_limit_are_refused_and_the_others_served(door: System) -> None:
    socks = [connect(door.http_port) for _ in range(MAX_CONNECTIONS + 10)]
    served, refused = 0, 0
    try:
        for sock in socks:
            try:
                sock.sendall(request_head("GET", "/healthz", []))
                answer = read_answer(sock)
            except (ConnectionError, OSError):
                refused += 1  # closed before it could even ask
                continue
            assert answer.status in (200, 503), answer.body
            served += answer.status == 200
            refused += answer.status == 503
    finally:
        for sock in socks:
            sock.close()
    assert 1 <= served <= MAX_CONNECTIONS and refused >= 10
    assert httpx.get(f"{door.base_url}/healthz", timeout=10).status_code == 200


def test_every_answer_says_nosniff_and_names_no_server(door: System) -> None:
    with httpx.Client(base_url=door.base_url, timeout=10) as http:
        answers = [
            http.get("/healthz"),
            http.get("/api/products"),
            http.get("/no/such/path"),
            http.post("/api/holds", json={"qty": "many"}),
            http.post("/api/payments/webhook", content=b"{}"),
            http.get("/docs"),
        ]
    headers = [{k.lower(): v for k, v in a.headers.items()} for a in answers]
    with connect(door.http_port) as sock:
        sock.sendall(request_head("GET", "/", [("X-Big", "a" * 64 * 1024)]))
        headers.append({k.lower(): v for k, v in read_answer(sock).headers.items()})
    for answer in headers:
        assert answer["x-content-type-options"] == "nosniff"
        assert "server" not in answer


def test_hold_order_and_webhook_answers_and_their_problems_are_no_store(door: System) -> None:
    with httpx.Client(base_url=door.base_url, timeout=10) as http:
        answers = [
            http.get(f"/api/holds/{uuid.uuid4()}"),
            http.post("/api/holds", json={"qty": "many"}),
            http.get(f"/api/orders/{uuid.uuid4()}"),
            http.post("/api/orders", json={}),
            http.post("/api/payments/webhook", content=b"{}"),
        ]
    for answer in answers:
        assert answer.status_code >= 400  # problems too
        assert answer.headers.get_list("cache-control") == ["no-store"], answer.url


def test_product_answers_are_not_marked_no_store(door: System) -> None:
    r = httpx.get(f"{door.base_url}/api/products", timeout=10)
    assert r.status_code == 200 and "no-store" not in r.headers.get("cache-control", "")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_development_docs_load_every_script_and_style_from_the_gateway_itself(
    door: System, page: str
) -> None:
    html = httpx.get(f"{door.base_url}{page}", timeout=10)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(a.endswith(".js") for a in assets)
    assert not [a for a in assets if re.match(r"(https?:)?//", a)], assets
    for asset in assets:
        assert httpx.get(f"{door.base_url}{asset}", timeout=10).status_code == 200, asset


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/metrics"])
def test_production_serves_no_docs_openapi_or_metrics_on_the_api_port(
    production: tuple[System, int], path: str
) -> None:
    system, _ = production
    assert httpx.get(f"{system.base_url}{path}", timeout=10).status_code == 404


def test_production_serves_metrics_on_its_metrics_port(production: tuple[System, int]) -> None:
    system, metrics_port = production
    r = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert r.status_code == 200
    assert "flashsale_auth_failures_total" in r.text
    assert "flashsale_front_door_refusals_total" in r.text
    assert httpx.get(f"{system.base_url}/healthz", timeout=10).status_code == 200


def test_a_gateway_whose_metrics_port_is_taken_still_serves_the_api(servers: ServerSet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        system = System.on(
            servers,
            workers={},
            overrides={"FLASHSALE_METRICS_PORT": str(port)},
        )
        try:
            system.start()
            assert httpx.get(f"{system.base_url}/healthz", timeout=10).status_code == 200
            assert "metrics port unavailable" in system.log_text("gateway")
        finally:
            system.stop()
