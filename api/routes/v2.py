"""Open Inference Protocol (KServe V2) REST routes: health and metadata. `infer` is answered by
api.fastpath. Errors under `/v2` are `{"error": "..."}`, as the protocol says (api.errors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.dataplane import VersionNotServed
from api.deps import DataPlaneDep
from api.oip import encode
from api.oip.decode import parse_version
from api.responses import JSONResponse
from api.serving import ModelNotReady

router = APIRouter(prefix="/v2", tags=["open inference protocol"])


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return encode.SERVER


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(plane: DataPlaneDep) -> JSONResponse:
    ok = plane.cache.loaded_once.is_set()
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, plane: DataPlaneDep, version: str | None = None) -> Any:
    return encode.metadata(plane.model(name, parse_version(version)))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, plane: DataPlaneDep, version: str | None = None) -> Any:
    try:
        plane.model(name, parse_version(version))
    except (ModelNotReady, VersionNotServed):
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    return {"name": name, "ready": True}
