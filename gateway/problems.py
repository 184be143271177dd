"""RFC 9457 problem details: every error the API gives, with a machine-readable `code`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.bus import BusUnavailable, ReplyTimeout
from shared.metrics import count_problem

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("gateway")

#: SQLSTATE classes of a database that is away or busy, not of a wrong request: connection
#: exceptions (08), insufficient resources (53), operator intervention (57: shutdown, starting
#: up), and serialization failures and deadlocks (40001, 40P01).
_DB_FAULT_CLASSES = ("08", "53", "57")
_DB_FAULT_STATES = {"40001", "40P01"}
#: Seconds a client is asked to wait after an infrastructure fault.
RETRY_AFTER_SECONDS = 1


class Problem(Exception):
    """Raise to answer with a problem+json body; `extra` fields are added to the body."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    """The JSON response of a problem (counted in flashsale_http_problems_total)."""
    count_problem(problem.status, problem.code)
    body: dict[str, Any] = {
        "type": f"urn:flashsale:problem:{problem.code}",
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        **problem.extra,
    }
    if instance:
        body["instance"] = instance
    return JSONResponse(
        jsonable_encoder(body),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


def problem_bytes(status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection."""
    phrase = HTTPStatus(status).phrase
    problem = {"type": f"urn:flashsale:problem:{code}", "title": phrase, "status": status}
    body = json.dumps({**problem, "detail": detail, "code": code}).encode()
    lines = [f"HTTP/1.1 {status} {phrase}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines += [
        b"content-type: " + PROBLEM_JSON.encode(),
        b"content-length: " + str(len(body)).encode(),
        b"cache-control: no-store",
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def unavailable(detail: str = "the service cannot take this request right now") -> Problem:
    """503 with Retry-After: the broker or database is down, or no worker answered in time."""
    return Problem(503, "unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def infrastructure_fault(exc: BaseException) -> str | None:
    """ "database" or "broker" when `exc` (or what caused it) is an outage of that server rather
    than a bug or a bad request; None otherwise."""
    seen: BaseException | None = exc
    for _ in range(8):  # SQLAlchemy wraps the driver's error, which wraps the socket's
        if seen is None:
            return None
        if isinstance(seen, BusUnavailable | ReplyTimeout):
            return "broker"
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return "database"
        if isinstance(
            seen,
            sqlalchemy.exc.OperationalError
            | sqlalchemy.exc.InterfaceError
            | sqlalchemy.exc.TimeoutError  # the pool's: no connection came back in time
            | sqlalchemy.exc.ResourceClosedError
            | asyncpg.InterfaceError
            | asyncpg.exceptions.PostgresConnectionError
            | OSError,  # ConnectionRefusedError, ConnectionResetError, TimeoutError, …
        ):
            return "database"
        state = _sqlstate(seen)
        if state and (state[:2] in _DB_FAULT_CLASSES or state in _DB_FAULT_STATES):
            return "database"
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def outage_answered(detail: str) -> Iterator[None]:
    """Within it, an outage of the database or broker is a 503 with `detail` (what is known
    of the request's effect at that point); any other error passes."""
    try:
        yield
    except Exception as exc:
        if infrastructure_fault(exc) is None:
            raise
        raise unavailable(detail) from exc


def outage(request: Request, server: str) -> Problem:
    """The 503 of an outage met while answering `request`, saying what is known of its effect."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return unavailable(f"the {server} is unavailable; retry shortly")
    return unavailable(
        f"the {server} became unavailable while this request was handled; the outcome is "
        "unknown; retry with the same Idempotency-Key"
    )


def install(app: FastAPI) -> None:
    """Route every error, including FastAPI's own, through problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        problem = Problem(422, "validation_error", f"{where}: {first['msg']}", errors=errors)
        return problem_response(problem, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # FastAPI's 400 for a JSON body it could not even decode (not UTF-8, nested too
            # deep): the same 422 as any other body that is not JSON
            unreadable = {"loc": ("body",), "msg": "the body is not JSON", "type": "json_invalid"}
            return await on_validation(request, RequestValidationError([unreadable]))
        codes = {404: "not_found", 405: "method_not_allowed"}
        problem = Problem(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return problem_response(problem, request.url.path)

    async def on_fault(request: Request, exc: Exception) -> JSONResponse:
        server = infrastructure_fault(exc)
        if server is not None:  # expected during an outage: one line, no traceback
            log.warning(
                "request failed on an outage",
                extra={"path": request.url.path, "server": server, "error": repr(exc)[:300]},
            )
            return problem_response(outage(request, server), request.url.path)
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Only reached on a bug: say so without leaking internals; the log has the traceback.
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return problem_response(
            Problem(500, "internal_error", "an unexpected error occurred"), request.url.path
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Outages are answered by the exception middleware (so the server keeps the connection):
    # only what is left, a bug, reaches the last-resort handler.
    for fault in (
        OSError,
        sqlalchemy.exc.SQLAlchemyError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        BusUnavailable,
        ReplyTimeout,
    ):
        app.add_exception_handler(fault, on_fault)
    app.add_exception_handler(Exception, on_unexpected)
