"""Dependencies of the routes, as Annotated aliases; all built in the lifespan."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.problems import Problem
from gateway.rpc import Requester
from gateway.security import auth_failed
from shared.settings import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _requester(request: Request) -> Requester:
    requester: Requester = request.app.state.requester
    return requester


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
RequesterDep = Annotated[Requester, Depends(_requester)]


async def _admin(
    request: Request,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.admin_token.encode()
    ):
        auth_failed("admin_token", request, "missing" if not authorization else "mismatch")
        raise Problem(
            401,
            "unauthorized",
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(_admin)
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Replays return the first result"),
]
