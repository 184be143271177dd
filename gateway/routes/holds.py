"""Holds: reserve units for a short time (decided by the product's inventory partition)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.contract import header, link, problems
from gateway.deps import (
    EngineDep,
    IdempotencyKey,
    RequesterDep,
    SettingsDep,
    StorefrontDep,
    customer_throttle,
)
from gateway.idempotency import KEY_REUSED, parse_id, replayed, request_hash
from gateway.problems import Problem, outage_answered
from gateway.rpc import Requester, hold_problem
from gateway.schemas import HoldIn, HoldOut
from shared.db import queries
from shared.holds import hold_is_live
from shared.ids import random_uuid
from shared.messages import HoldPlaced, HoldReply, PlaceHold, utcnow
from shared.messages.replies import HoldRefusalReason
from shared.metrics import GATEWAY_HOLDS_REFUSED

#: The database is down before anything was asked of a worker.
UNAVAILABLE = "the database is unavailable; no hold was placed; retry with the same Idempotency-Key"

router = APIRouter(tags=["holds"])

_REFUSALS = {
    "product_not_found": (404, "product {product_id} does not exist"),
    "insufficient_stock": (409, "only {available} unit(s) of product {product_id} available"),
    "sale_not_active": (409, "product {product_id} is not on sale right now"),
    "customer_limit_exceeded": (409, "this customer may not hold more of product {product_id}"),
    "customer_id_required": (
        422,
        "product {product_id} has a per-customer limit: the hold needs a customer_id",
    ),
    "idempotency_key_reused": (409, KEY_REUSED),
    "product_undecidable": (
        503,
        "product {product_id} cannot be decided: its stored data is invalid (the operator is "
        "told); the hold was not placed",
    ),
}
#: Seconds to wait before asking again about a product whose data an operator must repair.
UNDECIDABLE_RETRY_AFTER = "30"


def hold_view(hold: dict[str, Any]) -> dict[str, Any]:
    """A hold as the API shows it: active past `expires_at` is already expired."""
    status = hold["status"]
    if status == "active" and not hold_is_live(status, hold["expires_at"], utcnow()):
        status = "expired"
    return {**hold, "status": status}


@router.post(
    "/api/holds",
    status_code=201,
    response_model=HoldOut,
    operation_id="createHold",
    summary="Hold units of a product",
    responses={
        201: {
            "description": "The hold is placed (or, with a repeated Idempotency-Key, was).",
            "headers": {"Location": header("The hold's URL.")},
            "links": {
                "getHold": link("getHold", {"hold_id": "$response.body#/hold_id"}),
                "createOrder": link("createOrder", hold_id="$response.body#/hold_id"),
            },
        },
        **problems(
            "unauthorized",
            "product_not_found",
            "insufficient_stock",
            "sale_not_active",
            "customer_limit_exceeded",
            "idempotency_key_reused",
            "body_too_large",
            "validation_error",
            "customer_id_required",
            "rate_limited",
            "product_unavailable",
        ),
    },
)
async def place_hold(
    body: HoldIn,
    request: Request,
    response: Response,
    settings: SettingsDep,
    engine: EngineDep,
    requester: RequesterDep,
    client_id: StorefrontDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Hold `qty` units of a product until `expires_at`; turn it into an order before then."""
    if body.qty > settings.max_qty_per_hold:
        raise Problem(
            422,
            "validation_error",
            f"qty: at most {settings.max_qty_per_hold} units per hold",
            errors=[{"loc": ["body", "qty"], "msg": "too large", "type": "less_than_equal"}],
        )
    if body.customer_id is not None:
        customer_throttle(request, client_id, body.customer_id)
    digest = None  # only a keyed request can be replayed by another with the same body
    if idempotency_key is not None:
        digest = request_hash(body)
        with outage_answered(UNAVAILABLE):
            async with engine.connect() as conn:
                found = await queries.get_hold_by_key(conn, client_id, idempotency_key)
        existing = replayed(found, digest)
        if existing is not None:
            response.headers["Location"] = f"/api/holds/{existing['hold_id']}"
            return hold_view(existing)
    reply = await new_hold(requester, body, client_id, idempotency_key, digest)
    response.headers["Location"] = f"/api/holds/{reply.hold_id}"
    return {**reply.model_dump(), "order_id": None}


async def new_hold(
    requester: Requester,
    body: HoldIn,
    client_id: str,
    idempotency_key: str | None = None,
    digest: str | None = None,
) -> HoldPlaced:
    """A hold the partition placed (or replayed); a Problem for every refusal, including the
    sold-out answer this process gives from its stock levels without asking."""
    cmd, future = begin_hold(requester, body, client_id, idempotency_key, digest)
    try:
        await future
    except Exception:  # noqa: S110 (answered by hold_result, from the future)
        pass
    return hold_result(cmd, future)


def begin_hold(
    requester: Requester,
    body: HoldIn,
    client_id: str,
    idempotency_key: str | None = None,
    digest: str | None = None,
) -> tuple[PlaceHold, asyncio.Future[HoldReply]]:
    """The hold's command, queued for its partition, and the future of its reply; a Problem
    at once when this process's stock levels already refuse it or too many are waiting."""
    available = requester.sold_out(body.product_id, body.qty, body.customer_id)
    if available is not None:  # the stock levels say so: no round trip to the partition
        GATEWAY_HOLDS_REFUSED.labels("snapshot", "insufficient_stock").inc()
        raise _refused("insufficient_stock", body.product_id, available)
    cmd = PlaceHold(
        # random: the Idempotency-Key finds a stored hold, it never computes an id
        hold_id=random_uuid(),
        product_id=body.product_id,
        qty=body.qty,
        customer_id=body.customer_id,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request_hash=digest,
        deadline=requester.deadline(),
    )
    return cmd, requester.submit_hold(cmd)


def hold_result(cmd: PlaceHold, future: asyncio.Future[HoldReply]) -> HoldPlaced:
    """What a done reply future says: the placed hold, or a Problem for a refusal or a fault
    (an error that is neither propagates)."""
    exc = future.exception()
    if exc is not None:
        problem = hold_problem(exc, cmd)
        if problem is None:
            raise exc
        raise problem from exc
    reply = future.result()
    if isinstance(reply, HoldPlaced):
        return reply
    GATEWAY_HOLDS_REFUSED.labels("worker", reply.reason).inc()
    raise _refused(reply.reason, cmd.product_id, reply.available)


def _refused(reason: HoldRefusalReason, product_id: int, available: int | None) -> Problem:
    status, template = _REFUSALS[reason]
    extra: dict[str, Any] = {"available": available} if reason == "insufficient_stock" else {}
    detail = template.format(product_id=product_id, available=available)
    if reason == "product_undecidable":
        headers = {"Retry-After": UNDECIDABLE_RETRY_AFTER}
        return Problem(status, "product_unavailable", detail, headers=headers)
    return Problem(status, reason, detail, **extra)


@router.get(
    "/api/holds/{hold_id}",
    response_model=HoldOut,
    operation_id="getHold",
    summary="A hold and its status",
    responses=problems("unauthorized", "hold_not_found", "rate_limited"),
)
async def get_hold(hold_id: str, engine: EngineDep, client_id: StorefrontDep) -> dict[str, Any]:
    """A hold and its status: active, converted (with its order) or expired."""
    parsed = parse_id(hold_id)
    hold = None
    if parsed is not None:
        async with engine.connect() as conn:
            hold = await queries.get_hold(conn, parsed, client_id)
    if hold is None:
        raise Problem(404, "hold_not_found", f"hold {hold_id} does not exist")
    return hold_view(hold)
