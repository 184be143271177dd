"""Products: public reads from the database, admin create and restock."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import AdminDep, EngineDep, IdempotencyKey, RequesterDep
from gateway.idempotency import command_id
from gateway.problems import Problem
from gateway.schemas import MAX_STOCK, ProductIn, ProductOut, RestockIn
from shared.db import queries
from shared.messages import Restock

router = APIRouter(tags=["products"])


def _not_found(product_id: int) -> Problem:
    return Problem(404, "product_not_found", f"product {product_id} does not exist")


@router.get("/api/products", response_model=list[ProductOut])
async def list_products(
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[dict[str, object]]:
    """Every product with its current availability."""
    async with engine.connect() as conn:
        return await queries.list_products(conn, limit, offset)


@router.get(
    "/api/products/{product_id}", response_model=ProductOut, responses={404: {"model": None}}
)
async def get_product(product_id: int, engine: EngineDep) -> dict[str, object]:
    """One product; `available` already reflects every committed hold and release."""
    async with engine.connect() as conn:
        product = await queries.get_product(conn, product_id)
    if product is None:
        raise _not_found(product_id)
    return product


@router.post(
    "/api/admin/products",
    response_model=ProductOut,
    status_code=201,
    dependencies=[AdminDep],
    tags=["admin"],
)
async def create_product(body: ProductIn, engine: EngineDep) -> dict[str, object]:
    """Create a product with all its stock available."""
    async with engine.begin() as conn:
        return await queries.insert_product(conn, **body.model_dump())


@router.post(
    "/api/admin/products/{product_id}/restock",
    response_model=ProductOut,
    dependencies=[AdminDep],
    tags=["admin"],
)
async def restock(
    product_id: int,
    body: RestockIn,
    engine: EngineDep,
    requester: RequesterDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, object]:
    """Add units through the product's inventory partition (stock has one writer).

    With an Idempotency-Key, retrying the same restock adds its units once.
    """
    async with engine.connect() as conn:
        product = await queries.get_product(conn, product_id)
    if product is None:
        raise _not_found(product_id)
    if product["stock_total"] + body.add > MAX_STOCK:
        raise Problem(
            422,
            "validation_error",
            f"add: stock_total would exceed {MAX_STOCK}",
            errors=[{"loc": ["body", "add"], "msg": "too large", "type": "less_than_equal"}],
        )
    message_id = command_id(f"restock:{product_id}", idempotency_key)
    reply = await requester.restock(
        Restock(
            message_id=message_id,
            product_id=product_id,
            add=body.add,
            deadline=requester.deadline(),
        )
    )
    if not reply.found:
        raise _not_found(product_id)
    async with engine.connect() as conn:
        product = await queries.get_product(conn, product_id)
    assert product is not None
    return product
