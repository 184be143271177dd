"""RFC 9457 problem details: every error the API gives, with a machine-readable `code`."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


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
    """The JSON response of a problem."""
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
    """503 with Retry-After: the broker is down or no worker answered in time."""
    return Problem(503, "unavailable", detail, headers={"Retry-After": "1"})


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
        codes = {404: "not_found", 405: "method_not_allowed"}
        problem = Problem(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return problem_response(problem, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Only reached on a bug: say so without leaking internals; the log has the traceback.
        import logging

        logging.getLogger("gateway").error("unhandled error on %s", request.url.path, exc_info=exc)
        return problem_response(
            Problem(500, "internal_error", "an unexpected error occurred"), request.url.path
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
