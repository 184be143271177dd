"""`flashsale webhook sign`: the header the gateway verifies, for the exact bytes given."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.signature import InvalidSignature, verify

pytestmark = pytest.mark.unit

BODY = '{"idempotency_key": "evt-1", "order_id": "0b7c", "status": "success"}'


def test_sign_prints_a_header_the_gateway_accepts_for_that_body_and_secret() -> None:
    run = CliRunner().invoke(
        app, ["webhook", "sign", "--body", BODY, "--secret", "s3cret", "--timestamp", "1700000000"]
    )
    assert run.exit_code == 0, run.output
    name, value = run.output.strip().split(": ", 1)
    assert name == "X-Signature" and value.startswith("t=1700000000,v1=")
    verify(value, BODY.encode(), ["other", "s3cret"], now=1700000010)
    with pytest.raises(InvalidSignature):
        verify(value, BODY.replace(" ", "").encode(), ["s3cret"], now=1700000010)


def test_sign_reads_the_body_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    raw = (json.dumps({"idempotency_key": "k", "hold_id": "h", "status": "failed"}) + "\n").encode()
    path.write_bytes(raw)
    run = CliRunner().invoke(
        app, ["webhook", "sign", "--body-file", str(path), "--secret", "x", "--value-only"]
    )
    assert run.exit_code == 0, run.output
    verify(run.output.strip(), raw, ["x"], now=time.time())


def test_sign_without_a_body_is_a_usage_error() -> None:
    run = CliRunner().invoke(app, ["webhook", "sign", "--secret", "x"])
    assert run.exit_code == 2


def test_send_builds_exactly_one_reference() -> None:
    run = CliRunner().invoke(
        app, ["webhook", "send", "--order-id", "a", "--hold-id", "b", "--url", "http://x"]
    )
    assert run.exit_code == 2 and "exactly one" in run.output
