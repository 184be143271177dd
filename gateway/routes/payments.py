"""Payment-provider webhooks: verified on the raw body, then handed to the payments worker."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from gateway.deps import RequesterDep, SettingsDep
from gateway.problems import Problem
from gateway.schemas import WebhookIn, WebhookOut
from gateway.security import auth_failed
from shared.bus import ReplyTimeout
from shared.messages import RecordPayment
from shared.signature import InvalidSignature, verify

router = APIRouter(tags=["payments"])


def payload_hash(body: WebhookIn) -> str:
    """Hash of the canonical webhook body: the same event, however it is spaced or ordered."""
    canonical = json.dumps(
        body.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.post(
    "/api/payments/webhook",
    response_model=WebhookOut,
    responses={202: {"model": WebhookOut}, 401: {}, 409: {}, 422: {}, 503: {}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookIn.model_json_schema()}},
        }
    },
)
async def webhook(
    request: Request,
    settings: SettingsDep,
    requester: RequesterDep,
    x_signature: Annotated[str | None, Header()] = None,
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
