"""A worker's own endpoints: liveness, readiness naming what is missing (503 problem+json),
Prometheus text; nothing else is served."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared import health

pytestmark = pytest.mark.unit


class Consumer:
    def __init__(self, up: bool) -> None:
        self.up = up

    async def ping(self, timeout: float | None) -> bool:
        return self.up


def _split(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


async def _all_ok() -> dict[str, str]:
    return {"subscribers": "ok", "database": "ok"}


async def test_a_worker_is_ready_only_once_it_consumes_with_both_connections_up() -> None:
    checks = await health.worker_checks(False, Consumer(False), None, None)
    assert checks == {
        "subscribers": "starting",
        "consumer_connection": "unreachable",
        "publisher_connection": "unreachable",
        "database": "starting",
    }


async def test_readiness_is_503_problem_json_naming_what_is_missing() -> None:
    async def checks() -> dict[str, str]:
        return {"subscribers": "ok", "consumer_connection": "unreachable", "database": "ok"}

    status, headers, body = _split(await health.respond("GET", "/readyz", checks))
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["content-type"] == "application/problem+json"
    assert headers["retry-after"] == "1"
    problem = json.loads(body)
    assert problem["code"] == "unavailable"
    assert problem["detail"] == "not ready: consumer_connection unreachable"
    assert problem["checks"]["database"] == "ok"


async def test_liveness_readiness_and_metrics_answer_200() -> None:
    for path, content_type in (
        ("/healthz", "application/json"),
        ("/readyz", "application/json"),
        ("/metrics", "text/plain"),
    ):
        status, headers, body = _split(await health.respond("GET", path, _all_ok))
        assert status == "HTTP/1.1 200 OK", path
        assert headers["content-type"].startswith(content_type)
        assert int(headers["content-length"]) == len(body)
    _, _, metrics = _split(await health.respond("GET", "/metrics", _all_ok))
    assert b"# TYPE flashsale_published_messages_total counter" in metrics


async def test_other_paths_and_methods_are_404_and_405() -> None:
    assert _split(await health.respond("GET", "/", _all_ok))[0].startswith("HTTP/1.1 404")
    assert _split(await health.respond("POST", "/readyz", _all_ok))[0].startswith("HTTP/1.1 405")


async def test_the_server_answers_one_request_per_connection_over_tcp() -> None:
    server = await health.serve("127.0.0.1", 0, _all_ok)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /readyz?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
        writer.close()
        status, _, body = _split(answer)
        assert status == "HTTP/1.1 200 OK"
        assert json.loads(body) == {"status": "ready", "checks": await _all_ok()}
    finally:
        server.close()
        await server.wait_closed()
