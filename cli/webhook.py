"""`flashsale webhook sign | send`: what a payment provider's developer needs to talk to us."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cli.exits import ExitCode, Unreachable
from shared.signature import sign

WEBHOOK_PATH = "/api/payments/webhook"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

app = typer.Typer(
    help="Payment-provider webhooks: sign a body, or sign and send it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Body = Annotated[
    str | None,
    typer.Option(
        "--body", help="The raw JSON body, signed byte for byte as given", show_default=False
    ),
]
BodyFile = Annotated[
    Path | None,
    typer.Option("--body-file", help="Read the raw body from this file ('-': standard input)"),
]
Secret = Annotated[
    str | None,
    typer.Option(
        envvar="FLASHSALE_WEBHOOK_SECRET",
        help="Shared secret [default: the first of FLASHSALE_WEBHOOK_SECRETS, the one that signs]",
        show_default=False,
    ),
]
Timestamp = Annotated[
    int | None,
    typer.Option(help="Unix seconds to sign with (the gateway accepts ±300 s) [default: now]"),
]
BaseUrl = Annotated[
    str,
    typer.Option("--url", envvar="FLASHSALE_BASE_URL", help="The gateway's base URL"),
]


def read_body(body: str | None, body_file: Path | None) -> bytes | None:
    """The raw bytes to sign: exactly what will be sent, not a re-encoded copy."""
    if body is not None and body_file is not None:
        raise typer.BadParameter("give --body or --body-file, not both")
    if body is not None:
        return body.encode()
    if body_file is None:
        return None
    if str(body_file) == "-":
        return sys.stdin.buffer.read()
    try:
        return body_file.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(str(exc), param_hint="--body-file") from exc


def signing_secret(secret: str | None) -> str:
    if secret:
        return secret
    from shared.settings import get_settings

    return get_settings().webhook_secrets[0]


def header(secret: str | None, body: bytes, timestamp: int | None) -> str:
    """The X-Signature value for `body`."""
    return sign(signing_secret(secret), body, int(time.time()) if timestamp is None else timestamp)


@app.command("sign")
def sign_command(
    body: Body = None,
    body_file: BodyFile = None,
    secret: Secret = None,
    timestamp: Timestamp = None,
    value_only: Annotated[
        bool, typer.Option("--value-only", help="Print only the value, not 'X-Signature: '")
    ] = False,
) -> None:
    """Print the X-Signature header for a body: t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">.

    Example: curl -H "$(flashsale webhook sign --body-file event.json)" --data-binary @event.json
    """
    raw = read_body(body, body_file)
    if raw is None:
        raise typer.BadParameter("give the body with --body or --body-file")
    value = header(secret, raw, timestamp)
    typer.echo(value if value_only else f"X-Signature: {value}")


def event_body(
    order_id: str | None,
    hold_id: str | None,
    status: str,
    amount_cents: int | None,
    idempotency_key: str | None,
) -> bytes:
    """A webhook body built from options, as a provider would send it."""
    if (order_id is None) == (hold_id is None):
        raise typer.BadParameter("give exactly one of --order-id and --hold-id (or a --body)")
    event: dict[str, Any] = {
        "idempotency_key": idempotency_key or f"evt-{uuid.uuid4()}",
        "status": status,
    }
    event["order_id" if order_id else "hold_id"] = order_id or hold_id
    if amount_cents is not None:
        event["amount_cents"] = amount_cents
    return json.dumps(event).encode()


def post(base_url: str, raw: bytes, signature: str, timeout: float) -> httpx.Response:
    """POST a signed body; Unreachable when the gateway does not answer."""
    url = base_url.rstrip("/") + WEBHOOK_PATH
    try:
        return httpx.post(
            url,
            content=raw,
            headers={"Content-Type": "application/json", "X-Signature": signature},
            timeout=timeout,
        )
    except httpx.TransportError as exc:
        raise Unreachable("gateway", url, str(exc) or type(exc).__name__) from exc


@app.command("send")
def send_command(
    order_id: Annotated[str | None, typer.Option(help="The order the payment is for")] = None,
    hold_id: Annotated[
        str | None, typer.Option(help="Or the hold, when the payment started before the order")
    ] = None,
    status: Annotated[str, typer.Option(help="success or failed")] = "success",
    amount_cents: Annotated[int | None, typer.Option(min=0)] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="[default: a new random key]", show_default=False)
    ] = None,
    body: Body = None,
    body_file: BodyFile = None,
    secret: Secret = None,
    timestamp: Timestamp = None,
    url: BaseUrl = DEFAULT_BASE_URL,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer")] = 10.0,
) -> None:
    """Sign a payment event and POST it to <url>/api/payments/webhook; print the answer.

    The body is --body/--body-file as given, or built from --order-id/--hold-id, --status,
    --amount-cents and --idempotency-key. Exit 0 on a 2xx answer, 4 on any other, 3 when the
    gateway cannot be reached.
    """
    if status not in ("success", "failed"):
        raise typer.BadParameter("success or failed", param_hint="--status")
    raw = read_body(body, body_file)
    if raw is None:
        raw = event_body(order_id, hold_id, status, amount_cents, idempotency_key)
    signature = header(secret, raw, timestamp)
    answer = post(url, raw, signature, timeout)
    typer.echo(f"> POST {url.rstrip('/')}{WEBHOOK_PATH}")
    typer.echo(f"> X-Signature: {signature}")
    typer.echo(f"> {raw.decode(errors='replace')}")
    typer.echo(f"< {answer.status_code} {answer.reason_phrase}")
    try:
        typer.echo(json.dumps(answer.json(), indent=2))
    except ValueError:
        typer.echo(answer.text)
    if not answer.is_success:
        raise typer.Exit(ExitCode.REFUSED)
