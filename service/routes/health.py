"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from service.dependencies import StoreDep, health_key, metrics_key
from service.observability import metrics_payload
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    dependencies=[Depends(health_key)],
)
async def healthz() -> Health:
    """Liveness: 200 while the process runs."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "No verified model is loaded"}},
    dependencies=[Depends(health_key)],
)
async def readyz(store: StoreDep) -> JSONResponse:
    """Readiness: 200 only when a verified model is loaded, 503 before."""
    if store.current is None:
        health = Health(status="unready", reason=store.last_error or "no model loaded yet")
        return JSONResponse(health.model_dump(exclude_none=True), status_code=503)
    ready = Health(status="ready", model_version=store.current.version)
    return JSONResponse(ready.model_dump(exclude_none=True))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    dependencies=[Depends(metrics_key)],
)
async def metrics() -> Response:
    """Prometheus metrics of this process (of all workers in multi-worker mode)."""
    payload, content_type = metrics_payload()
    return Response(payload, media_type=content_type)
