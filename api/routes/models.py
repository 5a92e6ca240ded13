"""Public v1 routes: models, feedback, live performance and drift. Predict is answered by
api.fastpath."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Client, MonitorDep, PlatformDep, json_model
from api.openapi import (
    CORRUPT_ARTIFACT,
    DATABASE,
    FEEDBACK_EXAMPLES,
    INVALID_LABELS,
    INVALID_QUERY,
    NO_MODEL,
    NO_VERSION,
    ONNX_FILE,
    failures,
    json_request,
)
from api.records import DriftStatus, ModelRecord, Performance, VersionRecord
from api.schemas import FeedbackAccepted, FeedbackRequest

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[Client])


@router.get("", responses=failures("v1", DATABASE))
async def list_models(platform: PlatformDep) -> list[ModelRecord]:
    """Every model, by name."""
    return await run_in_threadpool(platform.models)


@router.get("/{name}", responses=failures("v1", NO_MODEL, DATABASE))
async def get_model(name: str, platform: PlatformDep) -> ModelRecord:
    return await run_in_threadpool(platform.model, name)


@router.get("/{name}/versions", responses=failures("v1", NO_MODEL, DATABASE))
async def list_versions(name: str, platform: PlatformDep) -> list[VersionRecord]:
    """Every version of the model, oldest first."""
    return await run_in_threadpool(platform.versions, name)


@router.get(
    "/{name}/versions/{version}/onnx",
    response_class=Response,
    responses=ONNX_FILE | failures("v1", 401, NO_VERSION, CORRUPT_ARTIFACT, DATABASE),
)
async def download_onnx(name: str, version: str, platform: PlatformDep) -> Response:
    """The version's ONNX graph, byte for byte as the registry stores it, with its sha256
    (`X-Content-SHA256`, `Repr-Digest`), checked before it is sent: a corrupt artifact is a
    500 naming it, never a bad file."""
    file = await run_in_threadpool(platform.onnx_file, name, version)
    return Response(file.data, media_type="application/octet-stream", headers=file.headers())


@router.get("/{name}/performance", responses=failures("v1", NO_MODEL, INVALID_QUERY, DATABASE))
async def performance(
    name: str,
    monitor: MonitorDep,
    window: Annotated[
        int, Query(ge=10, le=200_000, description="Rows per window, and of `current`.")
    ] = 500,
    bucket_seconds: Annotated[
        float,
        Query(
            gt=0,
            le=366 * 86_400,
            allow_inf_nan=False,
            description="Width of the time buckets, in seconds.",
        ),
    ] = 60.0,
    limit: Annotated[
        int, Query(ge=1, le=200_000, description="Newest labelled predictions read.")
    ] = 20_000,
) -> Performance:
    """The live metric from feedback: by windows of rows (all and per version), by time,
    the champion's newest window, and version changes and detected changes marked."""
    return await run_in_threadpool(
        monitor.performance, name, window=window, bucket_seconds=bucket_seconds, limit=limit
    )


@router.get("/{name}/drift", responses=failures("v1", NO_MODEL, DATABASE))
async def drift(name: str, monitor: MonitorDep) -> DriftStatus:
    """The newest per-feature data-drift report and the concept-change detector's state."""
    return await run_in_threadpool(monitor.drift, name)


@router.post(
    "/{name}/feedback",
    status_code=202,
    responses=failures("v1", 401, 404, 422, 503, invalid=INVALID_LABELS),
    openapi_extra=json_request(FeedbackRequest, examples=FEEDBACK_EXAMPLES),
)
async def feedback(
    name: str,
    body: Annotated[FeedbackRequest, Depends(json_model(FeedbackRequest))],
    platform: PlatformDep,
) -> FeedbackAccepted:
    """True labels for predictions (by their id) or for explicit rows; all or nothing,
    committed before the 202."""
    accepted = await platform.feedback(name, body.labels)
    return FeedbackAccepted(accepted=accepted)
