"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import PlatformDep
from api.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(platform: PlatformDep) -> JSONResponse:
    problems = []
    try:
        await run_in_threadpool(platform.db.ping)
    except Exception as exc:
        problems.append(f"database unreachable: {type(exc).__name__}")
    if not platform.cache.loaded_once.is_set():
        problems.append("champions not loaded yet")
    body = {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "models": platform.cache.versions(),
        "not_ready": platform.cache.not_ready(),  # per model; the others are served
    }
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    # In the thread pool: the live series (api.metrics.LiveCollector) read the database.
    text = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
