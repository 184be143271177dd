"""Which exit code and which one line an exception becomes."""

from __future__ import annotations

import pytest

from cli.exits import ExitCode, Refused, Unreachable, classify, masked

pytestmark = pytest.mark.unit

URLS = {"database": "postgresql+asyncpg://app:pw@db:5432/shop", "broker": "amqp://a:b@mq/"}


def test_a_url_is_shown_without_its_password() -> None:
    assert masked("postgresql+asyncpg://app:pw@db:5432/shop") == (
        "postgresql+asyncpg://app:***@db:5432/shop"
    )
    assert masked("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_our_own_exceptions_map_to_their_codes() -> None:
    assert classify(Unreachable("gateway", "http://x", "refused"), URLS) == (
        ExitCode.UNREACHABLE,
        "cannot reach the gateway at http://x: refused",
    )
    assert classify(Refused("no"), URLS) == (ExitCode.REFUSED, "no")


def test_a_bug_is_not_dressed_up_as_a_server_problem() -> None:
    try:
        raise ValueError("oops")
    except ValueError as exc:
        assert classify(exc, URLS) is None
