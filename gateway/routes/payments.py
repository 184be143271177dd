"""Payment-provider webhooks: verified on the raw body, then handed to the payments worker."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import ValidationError

from gateway.contract import problems
from gateway.deps import RequesterDep, SettingsDep
from gateway.problems import Problem
from gateway.schemas import WebhookIn, WebhookOut
from gateway.security import auth_failed
from shared.bus import ReplyTimeout
from shared.messages import RecordPayment
from shared.signature import InvalidSignature, verify

router = APIRouter(tags=["payments"])

_signature = APIKeyHeader(
    name="X-Signature",
    scheme_name="webhookSignature",
    description='`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with a '
    "configured webhook secret (FLASHSALE_WEBHOOK_SECRETS); at most 300 s old; several `v1=` "
    "values are accepted (secret rotation). `flashsale webhook sign` makes one.",
    auto_error=False,
)
_EXAMPLE = {
    "idempotency_key": "evt_1Q2w3E4r5T6y",
    "order_id": "7d9e4b21-3c5a-4f08-b6e2-9a1c0d3f5e87",
    "status": "success",
    "amount_cents": 12900,
}


def payload_hash(body: WebhookIn) -> str:
    """Hash of the canonical webhook body: the same event, however it is spaced or ordered."""
    canonical = json.dumps(
        body.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.post(
    "/api/payments/webhook",
    response_model=WebhookOut,
    operation_id="recordPayment",
    summary="Record a payment outcome (signed webhook)",
    responses={
        200: {"description": "Recorded: `result` says what became of it."},
        202: {
            "model": WebhookOut,
            "description": "Accepted: `pending_order` (the order is not known yet: the event "
            "is stored and applied when it is) or `queued` (the worker did not answer in time; "
            "the event is durable and will be applied).",
        },
        **problems(
            "invalid_signature", "idempotency_key_reused", "body_too_large", "validation_error"
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/WebhookIn"},
                    "example": _EXAMPLE,
                }
            },
        }
    },
)
async def webhook(
    request: Request,
    settings: SettingsDep,
    requester: RequesterDep,
    x_signature: Annotated[str | None, Depends(_signature)] = None,
) -> Any:
    """Record a payment outcome once per `idempotency_key` and apply it to its order."""
    raw = await request.body()
    try:
        verify(
            x_signature,
            raw,
            settings.webhook_secrets,
            time.time(),
            settings.webhook_tolerance_seconds,
        )
    except InvalidSignature as exc:
        auth_failed("webhook_signature", request, str(exc))
        raise Problem(401, "invalid_signature", str(exc)) from exc
    try:
        body = WebhookIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    cmd = RecordPayment(
        idempotency_key=body.idempotency_key,
        order_id=body.order_id,
        hold_id=body.hold_id,
        status=body.status,
        amount_cents=body.amount_cents,
        provider_reference=body.provider_reference,
        payload=json.loads(raw),
        payload_hash=payload_hash(body),
    )
    try:
        reply = await requester.record_payment(cmd)
    except ReplyTimeout:
        # Confirmed by the broker: the event is durable in payments.webhooks.
        queued = WebhookOut(idempotency_key=body.idempotency_key, result="queued")
        return JSONResponse(queued.model_dump(mode="json"), status_code=202)
    if reply.result == "key_reused":
        raise Problem(
            409, "idempotency_key_reused", "this idempotency_key was used with another payload"
        )
    out = WebhookOut(
        idempotency_key=reply.idempotency_key,
        result=reply.result,
        reason=reply.reason,
        order_id=reply.order_id,
        order_status=reply.order_status,
    )
    status = 202 if reply.result == "pending_order" else 200
    # `reason` only where there is one (a rejected event, or a duplicate of one)
    answer = out.model_dump(mode="json", exclude={"reason"} if out.reason is None else None)
    return JSONResponse(answer, status_code=status)
