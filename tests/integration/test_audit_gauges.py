"""The worker's periodic conservation audit sets its gauges from one consistent snapshot."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import auditing
from shared.db.tables import products

pytestmark = pytest.mark.integration


async def test_a_product_missing_units_is_a_violation_with_its_drift(engine: AsyncEngine) -> None:
    row = {"name": f"test-{uuid.uuid4().hex[:10]}", "price_cents": 100, "stock_total": 5}
    async with engine.begin() as conn:  # 2 of its 5 units are nowhere: no hold, no order
        product_id = (
            await conn.execute(insert(products).values(**row, available=3).returning(products.c.id))
        ).scalar_one()
    try:
        bad = await auditing.audit_once(engine)
        mine = [r for r in bad if r.product_id == product_id]
        assert len(mine) == 1 and auditing.drift(mine[0]) == 2
        gauge = REGISTRY.get_sample_value
        assert gauge("flashsale_audit_products_violating") == len(bad) >= 1
        assert (gauge("flashsale_audit_drift_units") or 0) >= 2
        assert (gauge("flashsale_audit_last_success_timestamp_seconds") or 0) > 0
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(products).where(products.c.id == product_id))
    assert all(r.product_id != product_id for r in await auditing.audit_once(engine))
