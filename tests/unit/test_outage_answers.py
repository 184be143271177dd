"""An outage of the database or broker is a 503 with Retry-After that says what is known."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from gateway import problems
from gateway.coalescer import NotDecided
from gateway.rpc import maybe_sent, unknown_outcome
from shared.bus import BusUnavailable, ReplyTimeout

pytestmark = pytest.mark.unit


def _wrapped(orig: BaseException) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, orig, connection_invalidated=False)


OUTAGES: list[BaseException] = [
    ConnectionRefusedError(111, "Connect call failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    _wrapped(asyncpg.AdminShutdownError("terminating connection due to administrator command")),
    BusUnavailable("not connected to the broker"),
]


def _app(exc: BaseException) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/thing")
    async def read() -> None:
        raise exc

    @app.post("/thing")
    async def write() -> None:
        raise exc

    return app


async def _call(exc: BaseException, method: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.request(method, "/thing")


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
async def test_an_outage_on_any_route_is_503_unavailable_with_retry_after(
    exc: BaseException,
) -> None:
    for method in ("GET", "POST"):
        r = await _call(exc, method)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "unavailable"


async def test_a_read_says_retry_and_a_write_says_its_outcome_is_unknown() -> None:
    down = ConnectionRefusedError(111, "Connect call failed")
    read, write = await _call(down, "GET"), await _call(down, "POST")
    assert "retry shortly" in read.json()["detail"]
    assert "the outcome is unknown; retry with the same Idempotency-Key" in write.json()["detail"]


async def test_a_bug_is_still_a_500_without_internals() -> None:
    r = await _call(KeyError("secret internals"), "GET")
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert "secret" not in r.text


def test_a_data_error_is_not_an_outage() -> None:
    bad = _wrapped(asyncpg.DataError("invalid input for query argument"))
    assert problems.infrastructure_fault(bad) is None
    assert problems.infrastructure_fault(ValueError("no")) is None
    assert problems.infrastructure_fault(_wrapped(asyncpg.CannotConnectNowError())) == "database"


def test_a_command_never_sent_is_told_apart_from_one_that_may_have_been_applied() -> None:
    not_connected = BusUnavailable("not connected to the broker")
    assert not maybe_sent(not_connected)
    try:
        raise BusUnavailable("publish failed") from ConnectionResetError()
    except BusUnavailable as lost:
        assert maybe_sent(lost)
    assert issubclass(NotDecided, ReplyTimeout)  # decided "not placed", a kind of no answer
    keyed = unknown_outcome("the hold may have been placed", keyed=True)
    assert keyed.status == 503 and keyed.headers["Retry-After"] == "1"
    assert "the outcome is unknown" in keyed.detail and "same Idempotency-Key" in keyed.detail
    assert "send an Idempotency-Key" in unknown_outcome("x", keyed=False).detail
