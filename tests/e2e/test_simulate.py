"""`flashsale simulate` against the running system: a summary, a plot, and the audit's verdict."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import products
from tests.cli import invoke
from tests.harness import ADMIN_TOKEN, WEBHOOK_SECRETS, System
from tests.helpers import make_product
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e

Capsys = pytest.CaptureFixture[str]


def simulate(
    system: System,
    servers: ServerSet,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
) -> tuple[int, str, str]:
    """The command as a team rehearsing its launch runs it against the system."""
    env = {
        "FLASHSALE_DATABASE_URL": servers.app_database_url,
        "FLASHSALE_WEBHOOK_SECRETS": ",".join(WEBHOOK_SECRETS),
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    return invoke(capsys, monkeypatch, "simulate", "--url", system.base_url, *args, **env)


def test_a_short_sale_ends_with_a_summary_a_plot_and_a_passing_audit(
    system: System,
    servers: ServerSet,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    png, figures = tmp_path / "sale.png", tmp_path / "sale.json"
    code, out, err = simulate(
        system,
        servers,
        capsys,
        monkeypatch,
        *("--shoppers", "40", "--stock", "25", "--ramp", "1", "--think", "0.05"),
        *("--mix", "success=50,failure=20,abandon-hold=15,abandon-order=15"),
        *("--duplicates", "0.5", "--out-of-order", "0.3", "--seed", "7"),
        *("--png", str(png), "--json", str(figures)),
    )
    assert code == 0, out + err
    assert "flashsale simulate: summary" in out and "audit passed" in out
    found: dict[str, Any] = json.loads(figures.read_text())
    assert found["shoppers"] == 40 and found["errors"] == 0, found
    assert found["stock_total"] == 25
    # 40 shoppers for 25 units: every unit went to a hold, the rest were refused
    assert found["holds_placed"] >= 25 and found["holds_refused"] >= 1, found
    assert found["holds_placed"] + found["holds_refused"] == 40, found
    assert 0 < found["sold_units"] <= 25, found
    assert found["journeys"].get("paid", 0) == found["sold_units"], found
    # the provider's duplicates and early webhooks were answered as such
    assert found["webhooks"].get("duplicate", 0) >= 1, found
    assert found["webhooks"].get("pending_order", 0) >= 1, found
    assert found["latency_ms"]["hold"]["p99"] > 0 and found["audit"]["passed"], found
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


async def test_the_exit_status_names_a_broken_conservation(
    system: System,
    servers: ServerSet,
    engine: AsyncEngine,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
        broken = await make_product(client, stock=5)
    async with engine.begin() as conn:  # one unit in the books that is nowhere
        await conn.execute(
            update(products).where(products.c.id == broken["id"]).values(stock_total=6)
        )
    try:
        png = str(tmp_path / "p.png")
        args = ("--shoppers", "3", "--ramp", "0", "--think", "0", "--no-live", "--png", png)
        code, out, err = await asyncio.to_thread(
            simulate, system, servers, capsys, monkeypatch, *args
        )
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                update(products).where(products.c.id == broken["id"]).values(stock_total=5)
            )
    assert code == 1, out + err
    assert f"VIOLATION product {broken['id']}" in out and "audit failed" in out
