"""Dependencies of the routes, as Annotated aliases; all built in the lifespan."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.problems import Problem
from gateway.rpc import Requester
from gateway.security import auth_failed
from gateway.storefronts import Storefronts, throttle
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


_admin_token = HTTPBearer(
    scheme_name="adminToken",
    description="The operators' token of the admin endpoints (FLASHSALE_ADMIN_TOKEN).",
    auto_error=False,
)
ADMIN_REFUSED = "a valid admin bearer token is required"
#: How the admin endpoints word their 401, for their documented examples.
ADMIN_DETAILS = {"unauthorized": ADMIN_REFUSED}


async def _admin(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_token)],
) -> None:
    token = credentials.credentials if credentials else ""
    if not credentials or not hmac.compare_digest(
        token.strip().encode(), settings.admin_token.encode()
    ):
        missing = not request.headers.get("authorization")
        auth_failed("admin_token", request, "missing" if missing else "mismatch")
        raise Problem(401, "unauthorized", ADMIN_REFUSED, headers={"WWW-Authenticate": "Bearer"})


AdminDep = Depends(_admin)

_storefront_key = HTTPBearer(
    scheme_name="storefrontKey",
    description="A storefront's API key (required when the deployment configures keys).",
    auto_error=False,
)


def storefronts_of(request: Request, settings: Settings) -> Storefronts:
    """The app's storefronts (keys and rate limits), made on first use."""
    return storefronts_in(request.app.state, settings)


def storefronts_in(state: Any, settings: Settings) -> Storefronts:
    """The storefronts kept in an app's state, made on first use."""
    found: Storefronts | None = getattr(state, "storefronts", None)
    if found is None:
        found = state.storefronts = Storefronts(settings)
    return found


def authenticate(request: Request, settings: Settings, token: str | None) -> str:
    """The storefront a bearer token belongs to (its client id), within its rate; 401 for an
    unknown or missing key where keys are required."""
    storefronts = storefronts_of(request, settings)
    client_id = storefronts.identify(token)
    if client_id is None:
        auth_failed("storefront_key", request, "missing" if token is None else "unknown")
        raise Problem(
            401,
            "unauthorized",
            "a valid storefront API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    throttle(storefronts.per_storefront, client_id, "storefront")
    return client_id


async def _storefront(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_storefront_key)],
) -> str:
    """The storefront asking (its client id), within its rate; 401 for an unknown key."""
    return authenticate(request, settings, credentials.credentials if credentials else None)


def customer_throttle(request: Request, client_id: str, customer_id: str) -> None:
    """429 when one customer of a storefront asks for holds faster than allowed."""
    storefronts: Storefronts = request.app.state.storefronts
    throttle(storefronts.per_customer, (client_id, customer_id), "customer")


#: The client id of the storefront making the request ('' when no keys are configured).
StorefrontDep = Annotated[str, Depends(_storefront)]
#: One meaning of "no key": the header is absent. An empty value is refused (422), so a key
#: that reaches a worker or the database is never "".
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Replays return the first result. 1–200 characters: an empty value is "
        "refused (422 validation_error); omit the header to send a request without a key.",
    ),
]
