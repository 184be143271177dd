"""Products: public reads (from this process's snapshot, or exact from the database), admin
create and restock.

Consistency of `GET /api/products/{id}` (DESIGN.md §4): the gateway process that answered a
write reflects it in its next read at once; every other process within the bound documented in
docs/operations.md; `?consistent=true` or `Cache-Control: no-cache` reads the database.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from gateway import pages
from gateway.contract import link, problems
from gateway.deps import ADMIN_DETAILS, AdminDep, EngineDep, IdempotencyKey, RequesterDep
from gateway.idempotency import command_id
from gateway.problems import Problem
from gateway.product_reads import ProductReads
from gateway.schemas import MAX_STOCK, ProductIn, ProductOut, RestockIn
from gateway.snapshot import Reading
from shared.db import queries
from shared.messages import Restock
from shared.metrics import PRODUCT_READS

_FROM_DATABASE = PRODUCT_READS.labels("database")
_FROM_SNAPSHOT = PRODUCT_READS.labels("snapshot")

router = APIRouter(tags=["products"])

_CACHE_HEADERS = {
    "ETag": {
        "description": "Weak, from the product's `version`: send it back in `If-None-Match`.",
        "schema": {"type": "string", "example": 'W/"42"'},
    },
    "Cache-Control": {
        "description": "`public, max-age=1` (an edge cache may absorb polling for a second); "
        "`no-cache` on an exact read that was asked for.",
        "schema": {"type": "string"},
    },
    "Age": {
        "description": "Whole seconds since the availability was known to be current.",
        "schema": {"type": "integer"},
    },
    "Cache-Status": {
        "description": "RFC 9211: `flashsale-gateway; hit` from the gateway's snapshot, "
        "`fwd=request` an exact read asked for, `fwd=miss` read from the database because "
        "the snapshot did not hold the product.",
        "schema": {"type": "string"},
    },
}


def _bytes(header: str | None) -> bytes | None:
    return header.encode("latin-1") if header else None


def _not_found(product_id: int) -> Problem:
    return Problem(404, "product_not_found", f"product {product_id} does not exist")


def exact_answer(
    row: dict[str, Any], began: Reading, if_none_match: bytes | None, asked: bool
) -> Response:
    """An answer read from the database (200, or 304 when the client has this version)."""
    tag = pages.etag(row["version"])
    cache, status = (
        (pages.REVALIDATE, pages.ASKED_EXACT) if asked else (pages.SHARED_SECOND, pages.NOT_HELD)
    )
    found = pages.page_headers(tag, cache, began.at.timestamp(), status)
    headers = {k.decode(): v.decode() for k, v in found}
    if pages.not_modified(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(pages.of_row(row, began.at), media_type="application/json", headers=headers)


def _reads(request: Request) -> ProductReads:
    reads: ProductReads = request.app.state.reads
    return reads


ReadsDep = Annotated[ProductReads, Depends(_reads)]


@router.get(
    "/api/products",
    response_model=list[ProductOut],
    operation_id="listProducts",
    summary="Products by id, page by page",
    responses=problems("validation_error"),
)
async def list_products(
    reads: ReadsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    consistent: Annotated[
        bool,
        Query(
            description="Read from the database: exact, including every change committed "
            "before the request (the header `Cache-Control: no-cache` does the same)."
        ),
    ] = False,
    cache_control: Annotated[str | None, Header(include_in_schema=False)] = None,
    pragma: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Products by id, with their availability as a product page has it: from this process's
    snapshot (the same consistency), or exact from the database when asked for."""
    exact = consistent or pages.exact_asked(_bytes(cache_control), _bytes(pragma))
    encoded = await reads.listing(limit, offset, exact=exact)
    return Response(encoded, media_type="application/json")


@router.get(
    "/api/products/{product_id}",
    response_model=ProductOut,
    operation_id="getProduct",
    summary="One product and its availability",
    responses={
        200: {"headers": _CACHE_HEADERS},
        304: {"description": "The client's `If-None-Match` is this version.", "headers": {}},
        **problems("product_not_found", "validation_error"),
    },
)
async def get_product(
    product_id: int,
    reads: ReadsDep,
    consistent: Annotated[
        bool,
        Query(
            description="Read from the database: exact, including every change committed "
            "before the request (the header `Cache-Control: no-cache` does the same)."
        ),
    ] = False,
    cache_control: Annotated[str | None, Header(include_in_schema=False)] = None,
    pragma: Annotated[str | None, Header(include_in_schema=False)] = None,
    if_none_match: Annotated[
        str | None, Header(description="An ETag of an earlier answer: 304 if still current.")
    ] = None,
) -> Response:
    """One product. By default from this gateway process's snapshot of stock levels
    (`Cache-Status: flashsale-gateway; hit`): it reflects this process's own writes at once and
    every other committed change within the bound in docs/operations.md (p99 under 100 ms;
    never more than a second). `?consistent=true` or `Cache-Control: no-cache` reads the
    database (`fwd=request`), as does a product this process does not hold (`fwd=miss`)."""
    tag = if_none_match.encode("latin-1") if if_none_match else None
    exact = consistent or pages.exact_asked(_bytes(cache_control), _bytes(pragma))
    if not exact:
        found = reads.cached(product_id, tag)
        if found is not None:
            _FROM_SNAPSHOT.inc()
            status, encoded, headers = found
            return Response(
                encoded or None,
                status_code=status,
                headers={k.decode(): v.decode() for k, v in headers},
            )
    _FROM_DATABASE.inc()
    read = await (reads.exact(product_id) if exact else reads.missed(product_id))
    if read is None:
        raise _not_found(product_id)
    return exact_answer(*read, tag, exact)


@router.post(
    "/api/admin/products",
    response_model=ProductOut,
    status_code=201,
    dependencies=[AdminDep],
    tags=["admin"],
    operation_id="createProduct",
    summary="Create a product",
    responses={
        201: {
            "description": "Created: the product, as `GET` shows it.",
            "links": {
                "getProduct": link("getProduct", {"product_id": "$response.body#/id"}),
                "restockProduct": link("restockProduct", {"product_id": "$response.body#/id"}),
                "createHold": link("createHold", product_id="$response.body#/id", qty=1),
            },
        },
        **problems("unauthorized", "body_too_large", "validation_error", details=ADMIN_DETAILS),
    },
)
async def create_product(
    body: ProductIn, engine: EngineDep, requester: RequesterDep, reads: ReadsDep
) -> Response:
    """Create a product with all its stock available."""
    began = requester.snapshot.reading()
    async with engine.begin() as conn:
        row = await queries.insert_product(conn, **body.model_dump())
    requester.snapshot.install(row, began)
    reads.catalogue_changed()
    return Response(pages.of_row(row, began.at), status_code=201, media_type="application/json")


@router.post(
    "/api/admin/products/{product_id}/restock",
    response_model=ProductOut,
    dependencies=[AdminDep],
    tags=["admin"],
    operation_id="restockProduct",
    summary="Add units to a product",
    responses=problems(
        "unauthorized",
        "product_not_found",
        "body_too_large",
        "validation_error",
        details=ADMIN_DETAILS,
    ),
)
async def restock(
    product_id: int,
    body: RestockIn,
    engine: EngineDep,
    requester: RequesterDep,
    reads: ReadsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
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
    read = await reads.exact(product_id)
    assert read is not None
    row, began = read
    return Response(pages.of_row(row, began.at), media_type="application/json")
