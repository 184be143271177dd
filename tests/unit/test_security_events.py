"""Refused credentials are counted every time and logged at most once a second per kind."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY
from starlette.requests import Request

from gateway import security

pytestmark = pytest.mark.unit


def _count(kind: str) -> float:
    return REGISTRY.get_sample_value("flashsale_auth_failures_total", {"kind": kind}) or 0.0


def _request(path: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"authorization", b"Bearer wrong-token-value")],
        "client": ("203.0.113.7", 5555),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "query_string": b"",
    }
    return Request(scope)


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "authentication failed"]


def test_every_failure_is_counted_but_one_line_per_kind_per_second_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(security, "_now", lambda: clock[0])
    monkeypatch.setattr(security, "_last_logged", {})
    monkeypatch.setattr(security, "_suppressed", {})
    before = _count("admin_token")
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        for _ in range(5):
            security.auth_failed("admin_token", _request("/api/admin/products"))
        clock[0] += 1.5
        security.auth_failed("admin_token", _request("/api/admin/products"))
    assert _count("admin_token") - before == 6
    lines = _lines(caplog)
    assert len(lines) == 2
    assert vars(lines[1])["suppressed"] == 4


def test_the_log_line_names_kind_path_and_client_but_never_the_credential(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "_last_logged", {})
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        security.auth_failed("webhook_signature", _request("/api/payments/webhook"), "no match")
    (line,) = _lines(caplog)
    assert line.levelno == logging.WARNING
    assert vars(line)["kind"] == "webhook_signature"
    assert vars(line)["path"] == "/api/payments/webhook"
    assert vars(line)["client"] == "203.0.113.7"
    assert "wrong-token-value" not in str(vars(line))


def test_kinds_are_rate_limited_independently(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "_last_logged", {})
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        security.auth_failed("admin_token")
        security.auth_failed("storefront_key")
    assert [vars(r)["kind"] for r in _lines(caplog)] == ["admin_token", "storefront_key"]
