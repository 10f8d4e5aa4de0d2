"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.deps import ApiDep, CurrentPrincipal
from services.api.problems import responses
from services.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness (no token needed)")
def healthz() -> Health:
    """The process answers; says nothing about the store (see /readyz)."""
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, summary="Readiness (no token needed)",
    responses={503: {"model": Health, "description": "Store unreachable or projections too far behind"}},
)
def readyz(api: ApiDep) -> Health | JSONResponse:
    """Ready when the store answers and every projection is within the configured lag of the head."""
    bound = api.settings.api_ready_max_lag
    try:
        statuses = api.wired.runner.status()
    except Exception as problem:  # noqa: BLE001 - any failure to read the store means not ready
        body = Health(status="unavailable", detail=f"the store did not answer ({type(problem).__name__})")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503, headers={"Retry-After": str(api.settings.api_retry_after)})
    head = max((s.head for s in statuses), default=0)
    lag = max((s.lag for s in statuses), default=0)
    if lag > bound:
        body = Health(status="catching_up", head=head, max_lag=lag, detail=f"projections are {lag} events behind (bound {bound})")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503, headers={"Retry-After": str(api.settings.api_retry_after)})
    return Health(status="ready", head=head, max_lag=lag)


@router.get(
    "/metrics", summary="Prometheus metrics (any token)", response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
               **responses(401)},
)
def metrics(_: CurrentPrincipal, api: ApiDep) -> Response:
    """Request rates and latencies by route, commands by outcome, projection and relay positions and lag."""
    return Response(generate_latest(api.metrics.registry), media_type=CONTENT_TYPE_LATEST)
