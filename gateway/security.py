"""Security events: every refused credential is counted, and logged at most once a second."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request

from shared.metrics import AUTH_FAILURES

log = logging.getLogger("gateway.security")

#: Seconds between two log lines of one kind: a flood of bad tokens must not flood the logs.
LOG_INTERVAL_SECONDS = 1.0

_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_now = time.monotonic


def auth_failed(kind: str, request: Request | None = None, detail: str = "") -> None:
    """Count a refused credential and log it (never the secret), rate-limited per kind."""
    AUTH_FAILURES.labels(kind).inc()
    now = _now()
    last = _last_logged.get(kind)
    if last is not None and now - last < LOG_INTERVAL_SECONDS:
        _suppressed[kind] = _suppressed.get(kind, 0) + 1
        return
    _last_logged[kind] = now
    client = request.client.host if request is not None and request.client else None
    log.warning(
        "authentication failed",
        extra={
            "kind": kind,
            "path": request.url.path if request is not None else None,
            "client": client,
            "detail": detail,
            "suppressed": _suppressed.pop(kind, 0),
        },
    )
