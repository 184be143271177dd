"""The stock conservation audit as `flashsale audit` and `flashsale simulate` report it."""

from __future__ import annotations

from cli import ops
from shared.db.audit import ProductLedger
from shared.settings import Settings


def violations(rows: list[ProductLedger]) -> list[str]:
    """One line per product whose stock is not conserved."""
    return [
        f"VIOLATION product {r.product_id} ({r.name}): stock_total {r.stock_total} != "
        f"available {r.available} + held {r.held} + sold {r.sold}"
        + (" (available < 0)" if r.available < 0 else "")
        for r in rows
        if not r.conserved
    ]


def audit(settings: Settings) -> tuple[list[ProductLedger], list[str], str]:
    """Every ledger, the violation lines, and the verdict line."""
    rows = ops.run(ops.read_ledgers(settings))
    bad = violations(rows)
    if bad:
        return rows, bad, f"audit failed: {len(bad)} of {len(rows)} product(s) violate conservation"
    return rows, bad, f"audit passed: stock conserved for all {len(rows)} product(s)"
