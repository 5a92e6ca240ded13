"""Admin routes, behind the bearer token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.csv_rows import parse_csv
from api.deps import Admin, PlatformDep, field, json_body
from api.errors import MalformedInput
from tuning.spec import ModelSpec

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/models", status_code=201)
async def create_model(spec: ModelSpec, platform: PlatformDep, actor: Admin) -> dict[str, Any]:
    return await run_in_threadpool(platform.create_model, spec, actor=actor)


@router.post("/models/{name}/data", status_code=202)
async def upload(name: str, request: Request, platform: PlatformDep, actor: Admin) -> dict:
    """Labelled rows as JSON `{"rows": [...]}`, a text/csv body, or a multipart CSV `file`."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("text/csv", "multipart/form-data")):
        text = await _csv_text(request, ctype)
        model = await run_in_threadpool(platform.model, name)
        rows = parse_csv(ModelSpec.model_validate(model["spec"]), text)
    else:
        rows = field(await json_body(request), "rows")
    accepted = await run_in_threadpool(platform.upload, name, rows, actor=actor)
    return {"accepted": accepted}


async def _csv_text(request: Request, ctype: str) -> str:
    if ctype.startswith("text/csv"):
        raw = await request.body()
    else:
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise MalformedInput("multipart upload needs a CSV file in the field 'file'", "file")
        raw = await upload.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedInput("the CSV is not UTF-8 text", field="file") from exc


@router.post("/models/{name}/retrain", status_code=202)
async def retrain(name: str, platform: PlatformDep, actor: Admin) -> dict[str, Any]:
    return await run_in_threadpool(platform.retrain, name, actor=actor)


@router.get("/jobs/{job_id}")
async def job(job_id: str, platform: PlatformDep, _: Admin) -> dict[str, Any]:
    return await run_in_threadpool(platform.job, job_id)


@router.post("/models/{name}/promote")
async def promote(name: str, request: Request, platform: PlatformDep, actor: Admin) -> dict:
    body = await json_body(request)
    version = field(body, "version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise MalformedInput("version must be an integer", field="version")
    reason = body.get("reason") or "manual promotion"
    return await run_in_threadpool(platform.promote, name, version, actor=actor, reason=reason)


@router.post("/models/{name}/rollback")
async def rollback(name: str, request: Request, platform: PlatformDep, actor: Admin) -> dict:
    body = await request.body()
    reason = "manual rollback"
    if body:
        parsed = await json_body(request)
        if isinstance(parsed, dict) and parsed.get("reason"):
            reason = str(parsed["reason"])
    return await run_in_threadpool(platform.rollback, name, actor=actor, reason=reason)


@router.get("/events")
async def list_events(platform: PlatformDep, _: Admin, model: str | None = None) -> list[dict]:
    return await run_in_threadpool(platform.events, model)
