"""The `flashsale` command: run the system locally, migrate, seed, manage products."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import conservation, launcher, ops, purge, requests_http, simulate, webhook
from cli.exits import ExitCode, FlashsaleTyper
from shared.db import migrate, queries
from shared.db.session import make_engine
from shared.demo import seed as seed_demo
from shared.settings import LOCAL_AMQP_PORT, LOCAL_PG_PORT, get_settings

EPILOG = (
    "Exit codes: 0 done; 1 stock conservation violated (audit, simulate); 2 usage; "
    "3 database, broker or gateway unreachable; 4 refused by the server; 70 internal error."
)
# Plain help (no rich markup): `[default: ...]` and `<queue>` are shown as written.
app = FlashsaleTyper(
    help="Flash-sale checkout: local system, database and operator commands.",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True, rich_markup_mode=None)
products_app = typer.Typer(help="Products.", no_args_is_help=True, rich_markup_mode=None)
holds_app = typer.Typer(help="Holds.", no_args_is_help=True, rich_markup_mode=None)
dlq_app = typer.Typer(
    help="Dead-letter queues (<queue>.dead).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")
app.add_typer(products_app, name="products")
app.add_typer(holds_app, name="holds")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhook.app, name="webhook")
app.command("purge")(purge.command)
app.command("simulate")(simulate.command)

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
    gateway_processes: Annotated[
        int, typer.Option(min=1, envvar="FLASHSALE_GATEWAY_PROCESSES", help="on the one port")
    ] = 2,
    seed: Annotated[bool, typer.Option(help="Add the demo products")] = True,
    log_format: Annotated[str, typer.Option(help="json or text (the processes' logs)")] = "json",
    cluster: Annotated[int, typer.Option(min=1, max=9, help="RabbitMQ nodes, clustered")] = 1,
) -> None:
    """Start RabbitMQ, PostgreSQL, migrations, demo data, gateway and workers; Ctrl-C stops all."""
    if log_format not in ("json", "text"):
        raise typer.BadParameter("json or text", param_hint="--log-format")
    opts = _opts(home, amqp_port, mgmt_port, pg_port, http_port, inventory_replicas, seed)
    opts.log_format = log_format
    opts.gateway_processes = gateway_processes
    opts.cluster = cluster
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


@db_app.command("revision")
def db_revision(message: str) -> None:
    """Write the next migration from what autogenerate finds between shared/db/tables.py and
    FLASHSALE_DATABASE_URL (at head); review it, then commit it with the change to tables.py."""
    typer.echo(migrate.revision(get_settings().database_url, message))


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


@app.command()
def audit() -> None:
    """Check stock conservation for every product; exit 1 naming each product that fails."""
    _, bad, verdict = conservation.audit(get_settings())
    for line in [*bad, verdict]:
        typer.echo(line)
    if bad:
        raise typer.Exit(ExitCode.AUDIT_VIOLATION)


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per-product counts: available, held, sold (pending and paid), refused holds."""
    rows = ops.run(ops.read_ledgers(get_settings()))
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in rows]))
        return
    typer.echo(
        f"{'id':>5} {'available':>9} {'held':>6} {'sold':>6} {'refused':>8} {'total':>7}  name"
    )
    for r in rows:
        typer.echo(
            f"{r.product_id:>5} {r.available:>9} {r.held:>6} {r.sold:>6} "
            f"{r.refused:>8} {r.stock_total:>7}  {r.name}"
        )


@holds_app.command("sweep")
def holds_sweep() -> None:
    """Re-issue expiries now for holds and unpaid orders past their expiry (via partitions)."""
    holds, orders = ops.run(ops.sweep_now(get_settings()))
    typer.echo(f"re-issued expiry of {holds} hold(s) and {orders} unpaid order(s)")


QueueOpt = Annotated[
    str | None,
    typer.Option("--queue", help="One dead queue, e.g. inventory.p03.dead [default: all]"),
]


@dlq_app.command("list")
def dlq_list(
    queue: QueueOpt = None,
    limit: int = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead-lettered messages with their failure reason (they stay where they are)."""
    rows = ops.run(ops.dlq_list(get_settings(), queue, limit))
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no dead-lettered messages")
    for r in rows:
        typer.echo(
            f"{r['dead_queue']}  {r['type']}  {r['message_id']}  from {r['source_queue']}  "
            f"reason {r['reason']} x{r['count']}  at {r['time']}\n"
            f"    last error: {r['last_error'] or '(none recorded)'}"
            + (f" ({r['failures']} failures)" if r["failures"] else "")
        )


@dlq_app.command("replay")
def dlq_replay(queue: QueueOpt = None, limit: int = 1000) -> None:
    """Put dead-lettered messages back on their original queue (handlers are idempotent)."""
    n = ops.run(ops.dlq_replay(get_settings(), queue, limit))
    typer.echo(f"replayed {n} message(s)")


@app.command()
def docs(out: Annotated[Path, typer.Option(help="Folder")] = Path("docs")) -> None:
    """Write the AsyncAPI (messages) and OpenAPI (HTTP) documents, and requests.http from it."""
    from gateway.app import create_app

    out.mkdir(parents=True, exist_ok=True)
    openapi = json.loads(json.dumps(create_app().openapi()))  # as the file will read
    (out / "asyncapi.json").write_text(json.dumps(ops.asyncapi_document(), indent=2) + "\n")
    (out / "openapi.json").write_text(json.dumps(openapi, indent=2) + "\n")
    (out / "requests.http").write_text(requests_http.collection(openapi))
    typer.echo(f"wrote {out / 'asyncapi.json'}, {out / 'openapi.json'} and {out / 'requests.http'}")


if __name__ == "__main__":
    app()
