"""Webhook signatures: `X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.

Verified on the raw bytes, in constant time, within a tolerance; several `v1` values (the
provider rotating) and several secrets (us rotating) are accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


class InvalidSignature(Exception):
    """The header is missing, malformed, stale, or matches none of the secrets."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a provider sends for `body` at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    header: str | None, body: bytes, secrets: Sequence[str], now: float, tolerance: int = 300
) -> None:
    """Return when the signature is good; raise InvalidSignature with the reason otherwise."""
    if not header:
        raise InvalidSignature("missing X-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise InvalidSignature("malformed timestamp") from exc
        elif key == "v1" and value:
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise InvalidSignature("X-Signature needs t= and at least one v1=")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    ok = False
    for want in expected:
        for got in candidates:
            ok |= hmac.compare_digest(want.encode(), got.encode())
    if not ok:
        raise InvalidSignature("no signature matches")
