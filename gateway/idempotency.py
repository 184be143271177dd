"""Idempotency-Key support: the body is hashed; a key finds the stored result of its request."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from pydantic import BaseModel

from gateway.problems import Problem

_NAMESPACE = uuid.UUID("5b0e7a3e-9d7c-4c55-9a55-6f6c61736873")


def request_hash(body: BaseModel) -> str:
    """Hash of the canonical JSON of a validated body (field order and spacing do not matter)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def command_id(kind: str, key: str | None) -> uuid.UUID:
    """The id of an admin command (restock): the same for every retry with one key.

    Only for commands whose id is never shown to a client: holds and orders get random ids.
    """
    return uuid.uuid5(_NAMESPACE, f"{kind}:{key}") if key else uuid.uuid4()


KEY_REUSED = "this Idempotency-Key was used with another request body"


def replayed(existing: dict[str, Any] | None, digest: str) -> dict[str, Any] | None:
    """The resource a repeated key made (same body), None for a new key; 409 for another body."""
    if existing is None:
        return None
    if existing["request_hash"] != digest:
        raise Problem(409, "idempotency_key_reused", KEY_REUSED)
    return existing


def parse_id(value: str) -> uuid.UUID | None:
    """An opaque id from a path or body, or None when it cannot be one of ours."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
