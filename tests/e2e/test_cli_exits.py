"""The command line behaves: one line naming a server it cannot reach, distinct exit codes,
help that shows its defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.cli.exits import ExitCode
from shared.localservers import free_port
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def flashsale(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(run: subprocess.CompletedProcess[str], start: str) -> None:
    """Exit 3 and a single line on stderr that starts so: no traceback, no other noise."""
    assert run.returncode == ExitCode.UNREACHABLE, run.stdout + run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith(start), run.stderr


def test_an_unreachable_database_is_one_line_naming_it_and_where_without_its_password() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://ops:s3cret-pw@127.0.0.1:{port}/shop"
    run = flashsale("audit", FLASHSALE_DATABASE_URL=url)
    where = f"postgresql+asyncpg://ops:***@127.0.0.1:{port}/shop (FLASHSALE_DATABASE_URL)"
    assert_one_line(run, f"flashsale: cannot reach the database at {where}: ")
    assert "s3cret-pw" not in run.stderr


def test_an_unreachable_broker_is_one_line_naming_it() -> None:
    port = free_port()
    run = flashsale("dlq", "list", FLASHSALE_AMQP_URL=f"amqp://ops:pw@127.0.0.1:{port}/")
    where = f"amqp://ops:***@127.0.0.1:{port}/ (FLASHSALE_AMQP_URL)"
    assert_one_line(run, f"flashsale: cannot reach the broker at {where}: ")


def test_an_unreachable_gateway_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert_one_line(
        flashsale("simulate", "--url", url), f"flashsale: cannot reach the gateway at {url}"
    )
