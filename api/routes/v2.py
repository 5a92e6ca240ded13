"""Open Inference Protocol (KServe V2) REST routes: health and metadata. `infer` is answered by
api.fastpath. Errors under `/v2` are `{"error": "..."}`, as the protocol says (api.errors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.dataplane import parse_version
from api.deps import Client, DataPlaneDep
from api.oip import encode
from api.openapi import NO_MODEL, NOT_SERVED, failures
from api.schemas import ModelMetadata, ModelReady, ServerLive, ServerMetadata, ServerReady

router = APIRouter(prefix="/v2", tags=["open inference protocol"])


@router.get("", dependencies=[Client])
async def server_metadata() -> ServerMetadata:
    return encode.SERVER


@router.get("/health/live")
async def live() -> ServerLive:
    return ServerLive(live=True)


@router.get(
    "/health/ready",
    responses={503: {"model": ServerReady, "description": "The champions are not loaded yet."}},
)
async def ready(plane: DataPlaneDep, response: Response) -> ServerReady:
    ok = plane.loaded()
    response.status_code = 200 if ok else 503
    return ServerReady(ready=ok)


@router.get("/models/{name}", dependencies=[Client], responses=failures("v2", 404, NOT_SERVED))
@router.get(
    "/models/{name}/versions/{version}",
    dependencies=[Client],
    responses=failures("v2", 404, NOT_SERVED),
)
async def model_metadata(
    name: str, plane: DataPlaneDep, version: str | None = None
) -> ModelMetadata:
    return encode.metadata(plane.model(name, parse_version(version)))


_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ModelReady, "description": "No champion (of that version) served here."}
}


@router.get(
    "/models/{name}/ready", dependencies=[Client], responses=failures("v2", NO_MODEL) | _NOT_READY
)
@router.get(
    "/models/{name}/versions/{version}/ready",
    dependencies=[Client],
    responses=failures("v2", NO_MODEL) | _NOT_READY,
)
async def model_ready(
    name: str, plane: DataPlaneDep, response: Response, version: str | None = None
) -> ModelReady:
    ok = plane.ready(name, version)
    response.status_code = 200 if ok else 503
    return ModelReady(name=name, ready=ok)
