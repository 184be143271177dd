"""Orders: turn a live hold into an order, exactly once (decided by the orders worker)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from gateway.contract import header, link, problems
from gateway.deps import EngineDep, IdempotencyKey, RequesterDep, StorefrontDep
from gateway.idempotency import KEY_REUSED, parse_id, replayed, request_hash
from gateway.problems import Problem, infrastructure_fault, outage_answered
from gateway.schemas import OrderIn, OrderOut, OrderProcessing
from shared.bus import ReplyTimeout
from shared.db import queries
from shared.ids import random_uuid
from shared.messages import CreateOrder, OrderCreated

#: The database is down before anything was asked of a worker.
UNAVAILABLE = (
    "the database is unavailable; no order was created; retry with the same Idempotency-Key"
)

router = APIRouter(tags=["orders"])


def _hold_not_found(hold_id: str) -> Problem:
    return Problem(404, "hold_not_found", f"hold {hold_id} does not exist")


@router.post(
    "/api/orders",
    status_code=201,
    response_model=OrderOut,
    operation_id="createOrder",
    summary="Order a hold",
    responses={
        201: {
            "description": "The order is made (or, with a repeated Idempotency-Key, was).",
            "headers": {"Location": header("The order's URL.")},
            "links": {"getOrder": link("getOrder", {"order_id": "$response.body#/order_id"})},
        },
        202: {
            "model": OrderProcessing,
            "description": "Accepted: the decision was not back in time; it will be made.",
            "headers": {
                "Location": header("The order's URL, once it exists."),
                "Retry-After": header("Seconds to wait before asking again.", "integer"),
            },
        },
        **problems(
            "unauthorized",
            "hold_not_found",
            "hold_expired",
            "hold_already_used",
            "idempotency_key_reused",
            "body_too_large",
            "validation_error",
            "rate_limited",
        ),
    },
)
async def create_order(
    body: OrderIn,
    response: Response,
    engine: EngineDep,
    requester: RequesterDep,
    client_id: StorefrontDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create the order of an active hold; 202 with the order id when the answer is late."""
    hold_id = parse_id(body.hold_id)
    if hold_id is None:
        raise _hold_not_found(body.hold_id)
    digest = request_hash(body)
    if idempotency_key is not None:
        with outage_answered(UNAVAILABLE):
            async with engine.connect() as conn:
                found = await queries.get_order_by_key(conn, client_id, idempotency_key)
        existing = replayed(found, digest)
        if existing is not None:
            response.headers["Location"] = f"/api/orders/{existing['order_id']}"
            return existing
    # random: the Idempotency-Key finds a stored order, it never computes an id
    order_id = random_uuid()
    cmd = CreateOrder(
        order_id=order_id,
        hold_id=hold_id,
        payment_method=body.payment_method,
        client_id=client_id,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    try:
        reply = await requester.create_order(cmd)
    except ReplyTimeout:
        # The command is durable in the queue and will be decided: as this order (its id is
        # fixed), or refused if the hold is no longer live by then. Only that is promised.
        return JSONResponse(
            OrderProcessing(order_id=order_id).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/api/orders/{order_id}", "Retry-After": "1"},
        )
    if isinstance(reply, OrderCreated):
        response.headers["Location"] = f"/api/orders/{reply.order_id}"
        try:
            async with engine.connect() as conn:
                stored = await queries.get_order(conn, reply.order_id, client_id)
        except Exception as exc:  # the order exists: answer from the worker's reply
            if infrastructure_fault(exc) is None:
                raise
            stored = None
        return stored or reply.model_dump()
    if reply.reason == "hold_not_found":
        raise _hold_not_found(body.hold_id)
    if reply.reason == "hold_expired":
        raise Problem(409, "hold_expired", f"hold {hold_id} has expired")
    if reply.reason == "hold_already_used":
        raise Problem(
            409,
            "hold_already_used",
            f"hold {hold_id} already became order {reply.order_id}",
            order_id=str(reply.order_id) if reply.order_id else None,
        )
    raise Problem(409, "idempotency_key_reused", KEY_REUSED)


@router.get(
    "/api/orders/{order_id}",
    response_model=OrderOut,
    operation_id="getOrder",
    summary="An order and its payment status",
    responses=problems("unauthorized", "order_not_found", "rate_limited"),
)
async def get_order(order_id: str, engine: EngineDep, client_id: StorefrontDep) -> dict[str, Any]:
    """An order and its payment status."""
    parsed = parse_id(order_id)
    order = None
    if parsed is not None:
        async with engine.connect() as conn:
            order = await queries.get_order(conn, parsed, client_id)
    if order is None:
        raise Problem(404, "order_not_found", f"order {order_id} does not exist")
    return order
