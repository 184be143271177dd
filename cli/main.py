"""The `flashsale` command: run the system locally, migrate, seed, manage products."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli import (
    db,
    dlq,
    launcher,
    ops,
    products,
    purge,
    requests_http,
    simulate,
    stock,
    system,
    webhook,
)
from cli.exits import FlashsaleTyper
from shared.settings import LOCAL_AMQP_PORT, LOCAL_PG_PORT

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
app.add_typer(db.db_app, name="db")
app.add_typer(products.products_app, name="products")
app.add_typer(stock.holds_app, name="holds")
app.add_typer(dlq.dlq_app, name="dlq")
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
) -> system.LaunchOptions:
    return system.LaunchOptions(
        home=(home or system.default_home()).resolve(),
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


# In the order of `flashsale --help`: Typer lists the commands as they were added.
app.command()(products.seed)
app.command()(stock.audit)
app.command()(stock.stats)


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
