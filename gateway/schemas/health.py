"""The process's health, as /healthz and /readyz answer it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    """The process's health."""

    status: str = Field(description="`ok` (alive) or `ready`.", examples=["ready"])
    checks: dict[str, Any] = Field(
        default={},
        description="What readiness checked, each `ok` or why not.",
        examples=[{"broker": "ok", "database": "ok"}],
    )
