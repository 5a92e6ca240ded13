"""Public v1 routes: models, predict, feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.codec import predict_rows
from api.deps import Body, Client, DataPlaneDep, PlatformDep, field

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
async def list_models(platform: PlatformDep) -> list[dict[str, Any]]:
    return await run_in_threadpool(platform.models)


@router.get("/{name}")
async def get_model(name: str, platform: PlatformDep) -> dict[str, Any]:
    return await run_in_threadpool(platform.model, name)


@router.get("/{name}/versions")
async def list_versions(name: str, platform: PlatformDep) -> list[dict[str, Any]]:
    return await run_in_threadpool(platform.versions, name)


@router.post("/{name}/predict", dependencies=[Client])
async def predict(name: str, body: Body, plane: DataPlaneDep) -> Response:
    content = await run_in_threadpool(predict_rows, plane, name, field(body, "instances"))
    return Response(content, media_type="application/json")


@router.post("/{name}/feedback", status_code=202, dependencies=[Client])
async def feedback(name: str, body: Body, platform: PlatformDep) -> dict[str, int]:
    accepted = await run_in_threadpool(platform.feedback, name, field(body, "labels"))
    return {"accepted": accepted}
