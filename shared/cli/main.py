"""The `flashsale` command: run the system locally, migrate, seed, manage products."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.cli import launcher
from shared.db import migrate, queries
from shared.db.session import make_engine
from shared.demo import seed as seed_demo
from shared.settings import LOCAL_AMQP_PORT, LOCAL_PG_PORT, get_settings

app = typer.Typer(
    help="Flash-sale checkout: local system, database and operator commands.", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
products_app = typer.Typer(help="Products.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(products_app, name="products")

Home = Annotated[Path | None, typer.Option(help="Data folder [default: .local/dev]")]


def _opts(
    home: Path | None,
    amqp_port: int,
    mgmt_port: int,
    pg_port: int,
    http_port: int,
    inventory_replicas: int = 2,
    seed: bool = True,
) -> launcher.LaunchOptions:
    return launcher.LaunchOptions(
        home=(home or launcher.default_home()).resolve(),
        amqp_port=amqp_port,
        mgmt_port=mgmt_port,
        pg_port=pg_port,
        http_port=http_port,
        inventory_replicas=inventory_replicas,
        seed=seed,
    )


@app.command()
def up(
    home: Home = None,
    amqp_port: Annotated[int, typer.Option(envvar="FLASHSALE_LOCAL_AMQP_PORT")] = LOCAL_AMQP_PORT,
    mgmt_port: Annotated[int, typer.Option(envvar="FLASHSALE_LOCAL_MGMT_PORT")] = 15673,
    pg_port: Annotated[int, typer.Option(envvar="FLASHSALE_LOCAL_PG_PORT")] = LOCAL_PG_PORT,
    http_port: Annotated[int, typer.Option(envvar="FLASHSALE_HTTP_PORT")] = 8000,
    inventory_replicas: Annotated[int, typer.Option(min=1)] = 2,
    seed: Annotated[bool, typer.Option(help="Add the demo products")] = True,
) -> None:
    """Start RabbitMQ, PostgreSQL, migrations, demo data, gateway and workers; Ctrl-C stops all."""
    opts = _opts(home, amqp_port, mgmt_port, pg_port, http_port, inventory_replicas, seed)
    raise typer.Exit(launcher.up(opts))


@app.command()
def down(
    home: Home = None,
    amqp_port: Annotated[int, typer.Option(envvar="FLASHSALE_LOCAL_AMQP_PORT")] = LOCAL_AMQP_PORT,
    mgmt_port: Annotated[int, typer.Option(envvar="FLASHSALE_LOCAL_MGMT_PORT")] = 15673,
    pg_port: Annotated[int, typer.Option(envvar="FLASHSALE_LOCAL_PG_PORT")] = LOCAL_PG_PORT,
) -> None:
    """Stop everything `flashsale up` started for this data folder."""
    raise typer.Exit(launcher.down(_opts(home, amqp_port, mgmt_port, pg_port, 0)))


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate FLASHSALE_DATABASE_URL up."""
    migrate.upgrade(get_settings().database_url, revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = "base") -> None:
    """Migrate FLASHSALE_DATABASE_URL down."""
    migrate.downgrade(get_settings().database_url, revision)


def _run(coro_fn: Any) -> Any:
    async def wrapper() -> Any:
        engine = make_engine(get_settings(), pool_size=2)
        try:
            return await coro_fn(engine)
        finally:
            await engine.dispose()

    return asyncio.run(wrapper())


@app.command()
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


if __name__ == "__main__":
    app()
