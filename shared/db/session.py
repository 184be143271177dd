"""Engine construction: built in a process's lifespan, never at import time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings


def make_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """An asyncpg engine for this process; dispose it on shutdown."""
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=5,
        # no pre-ping: it costs a round trip per transaction on the hot path; a dropped
        # connection fails that transaction, the message is redelivered, and the pool
        # replaces the connection
        pool_recycle=1800,
    )
