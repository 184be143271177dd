"""The command line behaves: one line naming a server it cannot reach, and exit 3."""

from __future__ import annotations

import pytest

from cli.exits import ExitCode
from shared.localservers import free_port
from tests.cli import invoke

pytestmark = pytest.mark.e2e

Capsys = pytest.CaptureFixture[str]


def assert_one_line(found: tuple[int, str, str], start: str) -> None:
    """Exit 3 and a single line on stderr that starts so: no traceback, no other noise."""
    code, out, err = found
    assert code == ExitCode.UNREACHABLE, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith(start), err


def test_an_unreachable_database_is_one_line_naming_it_and_where_without_its_password(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://ops:s3cret-pw@127.0.0.1:{port}/shop"
    found = invoke(capsys, monkeypatch, "audit", FLASHSALE_DATABASE_URL=url)
    where = f"postgresql+asyncpg://ops:***@127.0.0.1:{port}/shop (FLASHSALE_DATABASE_URL)"
    assert_one_line(found, f"flashsale: cannot reach the database at {where}: ")
    assert "s3cret-pw" not in found[2]


def test_an_unreachable_broker_is_one_line_naming_it(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    url = f"amqp://ops:pw@127.0.0.1:{port}/"
    found = invoke(capsys, monkeypatch, "dlq", "list", FLASHSALE_AMQP_URL=url)
    where = f"amqp://ops:***@127.0.0.1:{port}/ (FLASHSALE_AMQP_URL)"
    assert_one_line(found, f"flashsale: cannot reach the broker at {where}: ")


def test_an_unreachable_gateway_is_one_line(
    capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["simulate", "--url", url], ["webhook", "send", "--order-id", "x", "--url", url]):
        found = invoke(capsys, monkeypatch, *args)
        assert_one_line(found, f"flashsale: cannot reach the gateway at {url}")
