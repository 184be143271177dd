"""`flashsale audit`, `stats` and `holds sweep`: the stock's ledger and the expiries' safety net."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli import conservation, ops
from cli.exits import ExitCode
from shared.settings import get_settings

holds_app = typer.Typer(help="Holds.", no_args_is_help=True, rich_markup_mode=None)


def audit() -> None:
    """Check stock conservation for every product; exit 1 naming each product that fails."""
    _, bad, verdict = conservation.audit(get_settings())
    for line in [*bad, verdict]:
        typer.echo(line)
    if bad:
        raise typer.Exit(ExitCode.AUDIT_VIOLATION)


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
