"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.contract import problems
from gateway.deps import EngineDep, RequesterDep
from gateway.problems import PROBLEM_JSON
from gateway.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    operation_id="getLiveness",
    summary="Liveness",
    responses=problems("unavailable", common=False),
)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    operation_id="getReadiness",
    summary="Readiness",
    responses=problems("unavailable", common=False),
)
async def readyz(engine: EngineDep, requester: RequesterDep) -> Response:
    """Ready when both the broker and the database answer."""
    checks: dict[str, str] = {"broker": "ok" if requester.bus.is_open else "unreachable"}
    try:
        async with asyncio.timeout(2):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", never a 500
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if ready:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse(
        {
            "type": "urn:flashsale:problem:unavailable",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()),
            "code": "unavailable",
            "checks": checks,
        },
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": "1"},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
