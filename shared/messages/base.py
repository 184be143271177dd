"""Fields every message carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.ids import random_uuid


def utcnow() -> datetime:
    """Timezone-aware now; the only clock messages use by default."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every command, event and reply: an id to deduplicate by and a timestamp."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: uuid.UUID = Field(
        default_factory=random_uuid, description="Unique id; redeliveries carry the same one."
    )
    occurred_at: datetime = Field(default_factory=utcnow, description="When it was created.")


class Command(Message):
    """A command that someone waits for: dropped, not executed, once its deadline has passed."""

    deadline: datetime | None = Field(
        default=None,
        description="After this instant the requester has given up: drop, do not execute.",
    )

    def expired(self, now: datetime) -> bool:
        """Whether the requester has already given up on this command."""
        return self.deadline is not None and now >= self.deadline
