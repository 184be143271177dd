"""Prometheus series of the product (the standard client; FastStream adds its own per queue)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

HOLDS = Counter(
    "flashsale_holds",
    "Hold decisions of the inventory workers, by result (placed, replayed, refused).",
    ["result"],
)
HOLDS_REFUSED = Counter("flashsale_holds_refused", "Refused holds, by reason.", ["reason"])
HOLD_EXPIRIES = Counter("flashsale_hold_expiries", "Holds expired and their units returned.")
HOLD_EXPIRY_LATENESS = Histogram(
    "flashsale_hold_expiry_lateness_seconds",
    "How long after its expires_at a hold was expired.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
STOCK_RELEASED = Counter(
    "flashsale_stock_released", "Orders cancelled with their units returned, by reason.", ["reason"]
)
RESTOCKS = Counter("flashsale_restocks", "Restocks applied.")
ORDERS = Counter(
    "flashsale_orders", "Order conversions, by result (created or the refusal reason).", ["result"]
)
PAYMENTS = Counter("flashsale_payments", "Payment webhooks handled, by result.", ["result"])
COMMANDS_DROPPED = Counter(
    "flashsale_commands_dropped", "Commands dropped unexecuted past their deadline.", ["type"]
)
MESSAGES_FAILED = Counter(
    "flashsale_messages_failed", "Messages whose handling raised, by queue.", ["queue"]
)
REQUEST_SECONDS = Histogram(
    "flashsale_request_seconds",
    "Gateway request/reply latency over RabbitMQ, by command and outcome.",
    ["command", "outcome"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUTH_FAILURES = Counter(
    "flashsale_auth_failures",
    "Credentials the gateway refused, by kind (admin_token, webhook_signature, ...).",
    ["kind"],
)
FRONT_DOOR_REFUSALS = Counter(
    "flashsale_front_door_refusals",
    "Connections the gateway's server refused or cut, by problem code (or idle).",
    ["code"],
)
IN_FLIGHT_BOUND = Gauge(
    "flashsale_gateway_in_flight_bound",
    "Requests this gateway process lets in at once now (FLASHSALE_MAX_IN_FLIGHT at most; lower "
    "while its answers take longer than FLASHSALE_IN_FLIGHT_TARGET_MS).",
)
AVAILABILITY_STREAMS = Gauge(
    "flashsale_gateway_availability_streams",
    "Availability streams this gateway process serves now (FLASHSALE_MAX_STREAMS at most).",
)
GATEWAY_HOLDS_REFUSED = Counter(
    "flashsale_gateway_holds_refused",
    "Holds a gateway answered as refused, by source (snapshot: its stock levels, worker: the "
    "partition's decision) and reason.",
    ["source", "reason"],
)
STOCK_LEVEL_LAG = Histogram(
    "flashsale_stock_level_lag_seconds",
    "From a partition's commit (its StockLevels) to this gateway process taking it: how far "
    "behind its snapshot-served product pages are.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
PRODUCT_READS = Counter(
    "flashsale_product_reads_total",
    "Product answers by where they came from: snapshot (this process's stock levels) or "
    "database (exact reads, cold or unknown products, a lost feed).",
    ["source"],
)
HOLD_ENVELOPE_SIZE = Histogram(
    "flashsale_hold_envelope_size",
    "Holds per PlaceHolds envelope a gateway sent.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
PUBLISHED = Counter(
    "flashsale_published_messages",
    "Messages this process published itself (commands, expiries, follow-ups, stock levels), by "
    "exchange ((default): straight to a queue), kind (the message's type) and outcome "
    "(confirmed, refused: returned or nacked, timeout: no confirm in time, unavailable: not "
    "connected or the connection failed, sent: an unconfirmed event). The workers' replies and "
    "dead letters go through FastStream: faststream_published_messages_total.",
    ["exchange", "kind", "outcome"],
)
_published: dict[tuple[str, str, str], Any] = {}


def count_publish(exchange: str, kind: str, outcome: str) -> None:
    """One more publish in PUBLISHED (its label children are looked up once)."""
    key = (exchange, kind, outcome)
    child = _published.get(key)
    if child is None:
        child = _published[key] = PUBLISHED.labels(exchange or "(default)", kind, outcome)
    child.inc()


DEAD_LETTERED = Counter(
    "flashsale_messages_dead_lettered",
    "Messages a worker put in their queue's dead-letter queue, by source queue and reason "
    "(decision_error: it can never succeed; delivery_limit: a passing fault that did not pass).",
    ["queue", "reason"],
)
AUDIT_VIOLATIONS = Gauge(
    "flashsale_audit_products_violating",
    "Products whose stock was not conserved at this process's last audit "
    "(stock_total != available + active holds + pending/paid orders, or available < 0).",
)
AUDIT_DRIFT = Gauge(
    "flashsale_audit_drift_units",
    "Units unaccounted for at the last audit, over every product (|stock_total - available - "
    "held - sold|, plus any negative available).",
)
AUDIT_PRODUCTS = Gauge("flashsale_audit_products", "Products the last audit read.")
AUDIT_LAST_SUCCESS = Gauge(
    "flashsale_audit_last_success_timestamp_seconds",
    "When this process's last audit finished (Unix time; 0: none yet).",
)
HTTP_PROBLEMS = Counter(
    "flashsale_http_problems",
    "Problem answers (application/problem+json) of the gateway's application, by status and "
    "code: every 4xx and 5xx it answers but /readyz's 503 and what its HTTP server refuses "
    "before the application (flashsale_front_door_refusals_total).",
    ["status", "code"],
)
_problems: dict[tuple[int, str], Any] = {}


def count_problem(status: int, code: str) -> None:
    """One more problem answer in HTTP_PROBLEMS."""
    child = _problems.get((status, code))
    if child is None:
        child = _problems[(status, code)] = HTTP_PROBLEMS.labels(str(status), code)
    child.inc()
