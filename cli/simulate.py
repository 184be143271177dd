"""`flashsale simulate`: a sale from the shoppers' side, with live progress, a summary, a plot
and the conservation audit."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from cli import conservation, sim_report
from cli.exits import ExitCode, Refused, Unreachable
from cli.sim_shoppers import DEFAULT_MIX, Recorder, Sale, crowd, parse_mix, sample_stock
from cli.webhook import DEFAULT_BASE_URL, BaseUrl, Secret
from shared.settings import get_settings


async def _product(
    client: httpx.AsyncClient, product_id: int | None, stock: int, admin_token: str | None
) -> dict[str, Any]:
    """The product on sale: the one given, or a new one made through the admin API."""
    if product_id is None:
        token = admin_token or get_settings().admin_token
        body = {
            "name": f"simulated sale {uuid.uuid4().hex[:8]}",
            "price_cents": 1000,
            "stock": stock,
        }
        made = await client.post(
            "/api/admin/products", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        if made.status_code != 201:
            raise Refused(
                f"the gateway did not create the sale's product ({made.status_code}): give "
                "--product-id, or the admin token with --admin-token / FLASHSALE_ADMIN_TOKEN"
            )
        product_id = int(made.json()["id"])
    found = await client.get(f"/api/products/{product_id}", params={"consistent": "true"})
    if found.status_code != 200:
        raise Refused(f"product {product_id}: the gateway answered {found.status_code}")
    product: dict[str, Any] = found.json()
    return product


async def _run(
    sale: Sale, rec: Recorder, shoppers: int, ramp: float, seed: int | None, live: Live | None
) -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_stock(sale, rec, 0.25, stop))

    async def refresh() -> None:
        while not stop.is_set() and live is not None:
            live.update(sim_report.live_view(rec, shoppers))
            await asyncio.sleep(0.25)

    painter = asyncio.create_task(refresh())
    try:
        await crowd(sale, rec, shoppers, ramp, seed)
    finally:
        stop.set()
        await asyncio.gather(sampler, painter)
    if live is not None:
        live.update(sim_report.live_view(rec, shoppers))


async def _simulate(opts: dict[str, Any], show: bool) -> tuple[Recorder, dict[str, Any]]:
    headers = (
        {"Authorization": f"Bearer {opts['storefront_key']}"} if opts["storefront_key"] else {}
    )
    pool = opts["connections"] + 1  # one more for the stock sampler
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with httpx.AsyncClient(
        base_url=opts["url"], headers=headers, timeout=opts["timeout"], limits=limits
    ) as client:
        try:
            product = await _product(client, opts["product_id"], opts["stock"], opts["admin_token"])
        except httpx.TransportError as exc:
            raise Unreachable("gateway", opts["url"], str(exc) or type(exc).__name__) from exc
        sale = Sale(
            client=client,
            product_id=int(product["id"]),
            qty=opts["qty"],
            secret=opts["webhook_secret"] or get_settings().webhook_secrets[0],
            think_seconds=opts["think"],
            mix=opts["mix"],
            duplicates=opts["duplicates"],
            out_of_order=opts["out_of_order"],
            slots=asyncio.Semaphore(opts["connections"]),
        )
        rec = Recorder()
        if not show:
            await _run(sale, rec, opts["shoppers"], opts["ramp"], opts["seed"], None)
            return rec, product
        with Live(Text(""), console=Console(stderr=True), refresh_per_second=4) as live:
            await _run(sale, rec, opts["shoppers"], opts["ramp"], opts["seed"], live)
        return rec, product


def command(
    url: BaseUrl = DEFAULT_BASE_URL,
    shoppers: Annotated[int, typer.Option(min=1, help="How many shoppers come")] = 200,
    ramp: Annotated[float, typer.Option(min=0, help="Seconds over which they arrive")] = 5.0,
    think: Annotated[
        float, typer.Option(min=0, help="Mean think time between steps, seconds (±50 %)")
    ] = 0.5,
    mix: Annotated[str, typer.Option(help="Weights of the journeys (see above)")] = DEFAULT_MIX,
    duplicates: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of webhooks the provider sends twice")
    ] = 0.1,
    out_of_order: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of payments whose webhook arrives first"),
    ] = 0.1,
    stock: Annotated[int, typer.Option(min=0, help="Stock of the product made for the sale")] = 100,
    product_id: Annotated[
        int | None, typer.Option(help="Sell this product instead [default: make a new one]")
    ] = None,
    qty: Annotated[int, typer.Option(min=1, help="Units per hold")] = 1,
    storefront_key: Annotated[
        str | None,
        typer.Option(envvar="FLASHSALE_STOREFRONT_KEY", help="Storefront API key, where required"),
    ] = None,
    webhook_secret: Secret = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="FLASHSALE_ADMIN_TOKEN",
            help="Makes the sale's product [default: the settings' admin token]",
            show_default=False,
        ),
    ] = None,
    connections: Annotated[int, typer.Option(min=1, help="HTTP connections at most")] = 100,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one answer")] = 10.0,
    seed: Annotated[int | None, typer.Option(help="Random seed, for a run you can repeat")] = None,
    png: Annotated[Path, typer.Option(help="Where the plot goes")] = Path(
        ".local/simulate/simulate.png"
    ),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures here")
    ] = None,
    audit: Annotated[
        bool, typer.Option(help="Run the conservation audit (reads FLASHSALE_DATABASE_URL)")
    ] = True,
    live: Annotated[bool, typer.Option(help="Show the live progress line")] = True,
) -> None:
    """Simulate a sale from the shoppers' side against a running gateway.

    Each shopper looks at the product, thinks, holds a unit, and then follows one journey,
    drawn from --mix (name=weight, comma-separated; weights need not add up to 100):

    \b
      success        orders, and the provider reports the payment succeeded
      failure        orders, and the payment fails (the order is cancelled, units return)
      abandon-hold   leaves with the hold (it expires after the hold TTL)
      abandon-order  orders but never pays (cancelled after the payment window)

    A shopper refused a hold (sold out) leaves. Of the webhooks, --duplicates are delivered
    twice (the second answered `duplicate`) and --out-of-order arrive before the order
    exists, naming the hold (answered `pending_order`, applied when the order appears).

    It shows elapsed time, holds/s, sold, refused and p99 while it runs; then a summary
    table, a PNG (stock over time, answers/s by outcome, latency percentiles) and the
    conservation audit of the database. Exit 0 when the audit holds, 1 when it does not,
    3 when the gateway or the database cannot be reached.
    """
    try:
        weights = parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from exc
    opts: dict[str, Any] = {
        "url": url,
        "shoppers": shoppers,
        "ramp": ramp,
        "think": think,
        "mix": weights,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "stock": stock,
        "product_id": product_id,
        "qty": qty,
        "storefront_key": storefront_key,
        "webhook_secret": webhook_secret,
        "admin_token": admin_token,
        "connections": connections,
        "timeout": timeout,
        "seed": seed,
    }
    out = Console()
    rec, product = asyncio.run(_simulate(opts, live))
    elapsed = rec.now()
    found = sim_report.figures(rec, elapsed, int(product["stock_total"]))
    found["product_id"] = int(product["id"])
    title = f"flashsale simulate: {shoppers} shoppers, {found['stock_total']} units, {mix}"
    problem = sim_report.plot(rec, elapsed, png, title)
    bad: list[str] = []
    verdict = "not run (--no-audit)"
    if audit:
        _, bad, verdict = conservation.audit(get_settings())
    found["audit"] = {"ran": audit, "passed": not bad, "violations": bad}
    out.print(sim_report.summary_table(found, verdict))
    for line in bad:
        out.print(line, markup=False, highlight=False)
    out.print(problem or f"plot: {png}", markup=False, highlight=False)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(found, indent=2) + "\n")
    if bad:
        raise typer.Exit(ExitCode.AUDIT_VIOLATION)
