"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import Client, PlatformDep
from api.records import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "Not ready: `problems` says why."}},
)
async def readyz(platform: PlatformDep, response: Response) -> Readiness:
    """Ready once the database answers and the champions were loaded (503 until then)."""
    readiness = await run_in_threadpool(platform.readiness)
    response.status_code = 200 if readiness.status == "ready" else 503
    return readiness


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Client])
async def metrics(request: Request) -> Response:
    """The Prometheus exposition format; with API keys set, it takes a key too unless
    LOOPSERVE_METRICS_PUBLIC is set."""
    # In the thread pool: the live series (api.metrics.LiveCollector) read the database.
    text = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
