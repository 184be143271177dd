"""Transaction-scoped advisory locks that serialise an order's creation with its webhooks."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection


def lock_key(kind: str, ident: uuid.UUID) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock, the same in every process."""
    digest = hashlib.blake2b(f"{kind}:{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock(conn: AsyncConnection, kind: str, ident: uuid.UUID) -> None:
    """Wait for, then hold until commit, the lock on (kind, ident)."""
    await conn.execute(select(func.pg_advisory_xact_lock(lock_key(kind, ident))))
