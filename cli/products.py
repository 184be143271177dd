"""`flashsale products` and `flashsale seed`: the catalogue, straight in the database."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from shared.db import queries
from shared.db.session import make_engine
from shared.demo import seed as seed_demo
from shared.settings import get_settings

products_app = typer.Typer(help="Products.", no_args_is_help=True, rich_markup_mode=None)


def _run(coro_fn: Any) -> Any:
    async def wrapper() -> Any:
        engine = make_engine(get_settings(), pool_size=2)
        try:
            return await coro_fn(engine)
        finally:
            await engine.dispose()

    return asyncio.run(wrapper())


def seed() -> None:
    """Add the 10 demo products (running it again adds nothing)."""
    added = _run(seed_demo)
    typer.echo(f"added {added} demo product(s)")


@products_app.command("add")
def products_add(
    name: Annotated[str, typer.Option()],
    price_cents: Annotated[int, typer.Option(min=0)],
    stock: Annotated[int, typer.Option(min=0)],
    max_per_customer: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Create a product with all its stock available."""

    async def add(engine: Any) -> dict[str, Any]:
        async with engine.begin() as conn:
            return await queries.insert_product(
                conn,
                name=name,
                price_cents=price_cents,
                stock=stock,
                max_per_customer=max_per_customer,
            )

    typer.echo(json.dumps(_run(add), default=str))


@products_app.command("list")
def products_list() -> None:
    """Every product with its availability."""

    async def rows(engine: Any) -> list[dict[str, Any]]:
        async with engine.connect() as conn:
            return await queries.list_products(conn, 100_000, 0)

    typer.echo(f"{'id':>5}  {'available':>9}  {'stock':>7}  {'price':>9}  name")
    for p in _run(rows):
        typer.echo(
            f"{p['id']:>5}  {p['available']:>9}  {p['stock_total']:>7}  "
            f"{p['price_cents'] / 100:>9.2f}  {p['name']}"
        )
