"""What an inventory batch leaves for the operator: its metrics, one log line for the batch,
and a line for each rare decision (each hold and expiry only at DEBUG)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from shared import metrics
from shared.messages import utcnow
from workers.inventory import domain, handlers

log = logging.getLogger("workers.inventory")

_HOT = (domain.HoldPlaced, domain.HoldReplayed, domain.HoldRefused, domain.HoldExpired)


def observe(done: handlers.Committed, partition: str, seconds: float) -> None:
    """The metrics of a batch, one log line for it, and a line for each rare decision."""
    decisions = done.decisions
    kinds: Counter[str] = Counter(type(d).__name__ for d in decisions)
    refused: Counter[str] = Counter(
        d.reason for d in decisions if isinstance(d, domain.HoldRefused)
    )
    now = utcnow()
    lateness = [
        (now - d.hold.expires_at).total_seconds()
        for d in decisions
        if isinstance(d, domain.HoldExpired)
    ]
    metrics.HOLDS.labels("placed").inc(kinds["HoldPlaced"])
    metrics.HOLDS.labels("replayed").inc(kinds["HoldReplayed"])
    metrics.HOLDS.labels("refused").inc(sum(refused.values()))
    for reason, n in refused.items():
        metrics.HOLDS_REFUSED.labels(reason).inc(n)
    if lateness:
        metrics.HOLD_EXPIRIES.inc(len(lateness))
        for late in lateness:
            metrics.HOLD_EXPIRY_LATENESS.observe(max(late, 0.0))
    log.info(
        "batch decided",
        extra={
            "partition": partition,
            "commands": len(decisions),
            "placed": kinds["HoldPlaced"],
            "replayed": kinds["HoldReplayed"],
            "refused": dict(refused),
            "expired": len(lateness),
            "max_expiry_lateness_ms": int(max(lateness) * 1000) if lateness else None,
            "available": {str(pid): level.available for pid, level in done.levels.items()},
            "ms": round(seconds * 1000, 1),
        },
    )
    detailed = log.isEnabledFor(logging.DEBUG)
    for d in decisions:
        if detailed or not isinstance(d, _HOT):
            _observe_one(d, partition, now)


def _observe_one(d: domain.Decision, partition: str, now: Any) -> None:
    """One log line for one decision: INFO for rare ones, DEBUG for holds and expiries."""
    cmd = d.command
    ids: dict[str, Any] = {
        "partition": partition,
        "message_id": str(cmd.message_id),
        "product_id": cmd.product_id,
    }
    if isinstance(d, domain.HoldPlaced):
        log.debug(
            "hold placed",
            extra={
                **ids,
                "hold_id": str(d.hold.hold_id),
                "qty": d.hold.qty,
                "available": d.available,
                "customer_id": d.hold.customer_id,
            },
        )
    elif isinstance(d, domain.HoldReplayed):
        log.debug("hold replayed", extra={**ids, "hold_id": str(d.hold.hold_id)})
    elif isinstance(d, domain.HoldRefused):
        assert isinstance(cmd, domain.PlaceHold)
        log.debug(
            "hold refused",
            extra={
                **ids,
                "hold_id": str(cmd.hold_id),
                "reason": d.reason,
                "available": d.available,
                "qty": cmd.qty,
                "customer_id": cmd.customer_id,
            },
        )
    elif isinstance(d, domain.HoldExpired):
        lateness = (now - d.hold.expires_at).total_seconds()
        log.debug(
            "hold expired",
            extra={
                **ids,
                "hold_id": str(d.hold.hold_id),
                "qty": d.hold.qty,
                "lateness_ms": int(lateness * 1000),
            },
        )
    elif isinstance(d, domain.Restocked):
        metrics.RESTOCKS.inc()
        log.info(
            "stock added",
            extra={**ids, "available": d.product.available, "stock_total": d.product.stock_total},
        )
    elif isinstance(d, domain.StockReleased):
        metrics.STOCK_RELEASED.labels(d.reason).inc()
        log.info(
            "stock released",
            extra={
                **ids,
                "order_id": str(d.order.order_id),
                "qty": d.order.qty,
                "reason": d.reason,
            },
        )
    elif isinstance(d, domain.Dropped):
        metrics.COMMANDS_DROPPED.labels(cmd.type).inc()
        log.warning("command dropped past its deadline", extra={**ids, "type": cmd.type})
    elif isinstance(d, domain.Unchanged):
        log.info("command changed nothing", extra={**ids, "type": cmd.type, "why": d.why})
