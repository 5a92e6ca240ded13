"""Open Inference Protocol (KServe V2) REST routes. Errors here are `{"error": "..."}`, as the
protocol says, not FastAPI's `{"detail": ...}`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.dataplane import DataPlane, VersionNotServed
from api.deps import Client, DataPlaneDep
from api.errors import HANDLED, describe, v2_message
from api.oip import decode, encode
from api.responses import JSONResponse
from api.serving import Columns, LoadedModel, ModelNotReady

router = APIRouter(prefix="/v2", tags=["open inference protocol"])


def v2_errors(route: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Answer domain errors as the protocol says: `{"error": "..."}` with their status."""

    @functools.wraps(route)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await route(*args, **kwargs)
        except HANDLED as exc:
            status, detail = describe(exc) or (500, "internal error")
            return JSONResponse({"error": v2_message(detail)}, status_code=status)

    return wrapper


def parse_version(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit():
        raise VersionNotServed(f"version {version!r} is not a version number")
    return int(version)


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
@v2_errors
async def model_metadata(name: str, plane: DataPlaneDep, version: str | None = None) -> Any:
    model = await run_in_threadpool(plane.model, name, parse_version(version))
    return encode.metadata(model)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
@v2_errors
async def model_ready(name: str, plane: DataPlaneDep, version: str | None = None) -> Any:
    try:
        await run_in_threadpool(plane.model, name, parse_version(version))
    except (ModelNotReady, VersionNotServed):
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    return {"name": name, "ready": True}


@router.post("/models/{name}/infer", dependencies=[Client])
@router.post("/models/{name}/versions/{version}/infer", dependencies=[Client])
@v2_errors
async def infer(
    name: str, request: Request, plane: DataPlaneDep, version: str | None = None
) -> Response:
    body = await request.body()
    content, headers = await run_in_threadpool(
        infer_bytes, plane, name, parse_version(version), body, request.headers.get(decode.HEADER)
    )
    return Response(content, headers=headers)


def decode_infer(
    plane: DataPlane, name: str, version: int | None, body: bytes, header_length: str | None
) -> tuple[LoadedModel, decode.InferRequest, Columns]:
    """The served model, the parsed request and its validated columns."""
    model = plane.model(name, version)
    parsed = decode.parse(body, header_length)
    columns = decode.to_columns(model, parsed)
    plane.check_size(columns.n)
    return model, parsed, columns


def infer_bytes(
    plane: DataPlane, name: str, version: int | None, body: bytes, header_length: str | None
) -> tuple[bytes, dict[str, str]]:
    model, parsed, columns = decode_infer(plane, name, version, body, header_length)
    return encode.encode(plane.infer(model, columns), parsed)
