"""Admin routes, behind the bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from api.csv_rows import parse_csv
from api.deps import Admin, PlatformDep, field, json_body, json_model
from api.errors import MalformedInput
from api.openapi import (
    ADMIN_TOKEN,
    BROKER,
    CANNOT_CREATE,
    DATABASE,
    FILE_TOO_LARGE,
    INVALID_FILE,
    INVALID_JOBS_QUERY,
    INVALID_PROMOTION,
    INVALID_ROLLBACK,
    INVALID_ROWS,
    INVALID_SPEC,
    IS_CHAMPION,
    MODEL_FILE_BODY,
    NO_JOB,
    NO_MODEL,
    NO_MODEL_EVER,
    NO_PREVIOUS,
    NO_VERSION,
    SPEC_EXAMPLES,
    UPLOAD_BODY,
    failures,
    json_request,
)
from api.records import (
    MAX_JOBS_PAGE,
    EventRecord,
    JobPage,
    JobRecord,
    ModelDeleted,
    ModelRecord,
    Promoted,
    PromoteRequest,
    RetrainQueued,
    RollbackRequest,
    RolledBack,
    RowsAccepted,
    VersionImported,
)
from registry import jobs
from registry.models import JobStatus
from tuning.spec import ModelSpec

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/models",
    status_code=201,
    responses=failures("v1", ADMIN_TOKEN, CANNOT_CREATE, INVALID_SPEC, DATABASE),
    openapi_extra=json_request(ModelSpec, examples=SPEC_EXAMPLES),
)
async def create_model(
    actor: Admin,
    spec: Annotated[ModelSpec, Depends(json_model(ModelSpec))],
    platform: PlatformDep,
) -> ModelRecord:
    """A new model; upload labelled rows for it, then retrain it to get a champion. Refused
    (409) when LOOPSERVE_MAX_MODELS models exist already."""
    return await run_in_threadpool(platform.create_model, spec, actor=actor)


@router.delete("/models/{name}", responses=failures("v1", ADMIN_TOKEN, NO_MODEL, DATABASE))
async def delete_model(name: str, actor: Admin, platform: PlatformDep) -> ModelDeleted:
    """Delete the model with its versions, labelled rows, prediction log and jobs (open jobs
    are cancelled first); artifacts another model shares stay. Every replica stops serving it
    (predict answers 404, as for a name never created); the audit log keeps its entries and
    adds a `model_deleted` one saying what went."""
    return await run_in_threadpool(platform.delete_model, name, actor=actor)


@router.post(
    "/models/{name}/data",
    status_code=202,
    responses=failures("v1", ADMIN_TOKEN, NO_MODEL, INVALID_ROWS, DATABASE),
    openapi_extra=UPLOAD_BODY,
)
async def upload(name: str, actor: Admin, request: Request, platform: PlatformDep) -> RowsAccepted:
    """Labelled rows as JSON `{"rows": [...]}`, a text/csv body, or a multipart CSV `file`;
    all or nothing, committed before the 202."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("text/csv", "multipart/form-data")):
        text = await _csv_text(request, ctype)
        model = await run_in_threadpool(platform.model, name)
        rows = parse_csv(model.spec, text)
    else:
        rows = field(await json_body(request), "rows")
    accepted = await run_in_threadpool(platform.upload, name, rows, actor=actor)
    return RowsAccepted(accepted=accepted)


async def _csv_text(request: Request, ctype: str) -> str:
    if ctype.startswith("text/csv"):
        raw = await request.body()
    else:
        try:
            form = await request.form()
        except HTTPException as exc:  # Starlette's answer to a multipart body it cannot read
            raise MalformedInput(
                f"the multipart body cannot be read: {exc.detail}", "file"
            ) from exc
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise MalformedInput("multipart upload needs a CSV file in the field 'file'", "file")
        raw = await upload.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedInput("the CSV is not UTF-8 text", field="file") from exc


@router.post(
    "/models/{name}/versions",
    status_code=201,
    responses=failures("v1", ADMIN_TOKEN, NO_MODEL, FILE_TOO_LARGE, INVALID_FILE, DATABASE),
    openapi_extra=MODEL_FILE_BODY,
)
async def import_version(
    name: str,
    actor: Admin,
    request: Request,
    platform: PlatformDep,
    promote: Annotated[
        bool,
        Query(
            description="Promote it if it wins on the hold-out by the promotion rules; false: "
            "register it as a challenger for an explicit promotion."
        ),
    ] = True,
    filename: Annotated[
        str | None,
        Query(max_length=1024, description="The file's name for its lineage (a raw body)."),
    ] = None,
) -> VersionImported:
    """A version trained elsewhere: an ONNX graph, or a scikit-learn Pipeline saved with skops
    (loaded with an allow-list of types, never unpickled), as the body or the multipart field
    `file`. It is checked against the model's spec (refused, 422, naming what differs), judged
    on the newest hold-out against the champion as a retrain's challenger is, registered with
    its lineage and an audit entry, and promoted only if it wins."""
    data, given = await _model_file(request)
    return await run_in_threadpool(
        platform.import_version,
        name,
        data,
        filename=given or filename,
        actor=actor,
        promote=promote,
    )


async def _model_file(request: Request) -> tuple[bytes, str | None]:
    """The uploaded file's bytes and the name it came with, if any."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise MalformedInput(
                "multipart upload needs the model file in the field 'file'", "file"
            )
        data, given = await upload.read(), upload.filename
    else:
        data, given = await request.body(), None
    if not data:
        raise MalformedInput(
            "no file: send an ONNX or skops file as the body, or in the multipart field 'file'",
            "file",
        )
    return data, given


@router.post(
    "/models/{name}/retrain",
    status_code=202,
    responses=failures("v1", ADMIN_TOKEN, NO_MODEL, BROKER),
)
async def retrain(name: str, actor: Admin, platform: PlatformDep) -> RetrainQueued:
    """Start the model's retrain job, or join the open one."""
    return await run_in_threadpool(platform.retrain, name, actor=actor)


@router.get("/jobs", responses=failures("v1", ADMIN_TOKEN, NO_MODEL, INVALID_JOBS_QUERY, DATABASE))
async def list_jobs(
    platform: PlatformDep,
    _: Admin,
    model: Annotated[
        str | None, Query(description="Only this model's jobs (404 if there is no such model).")
    ] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS_PAGE, description="Most jobs in the page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=f"^{jobs.CURSOR.pattern}$",
            description="The previous page's `next_cursor`: the page of older jobs after it.",
        ),
    ] = None,
) -> JobPage:
    """Retrain jobs, newest first, a page at a time: follow `next_cursor` until it is null. A
    cursor names the last job of its page, so that pages neither repeat nor skip a job while
    new ones are created (as offsets would)."""
    return await run_in_threadpool(
        platform.jobs, model=model, status=status, limit=limit, cursor=cursor
    )


@router.get("/jobs/{job_id}", responses=failures("v1", ADMIN_TOKEN, NO_JOB, DATABASE))
async def job(job_id: str, _: Admin, platform: PlatformDep) -> JobRecord:
    """One retrain job, with every step of its search (`result.trials`)."""
    return await run_in_threadpool(platform.job, job_id)


@router.post(
    "/models/{name}/promote",
    responses=failures("v1", ADMIN_TOKEN, NO_VERSION, IS_CHAMPION, INVALID_PROMOTION, DATABASE),
    openapi_extra=json_request(PromoteRequest),
)
async def promote(
    name: str,
    actor: Admin,
    body: Annotated[PromoteRequest, Depends(json_model(PromoteRequest))],
    platform: PlatformDep,
) -> Promoted:
    """Make a version the champion; the one it replaces is archived."""
    return await run_in_threadpool(
        platform.promote, name, body.version, actor=actor, reason=body.reason
    )


@router.post(
    "/models/{name}/rollback",
    responses=failures("v1", ADMIN_TOKEN, NO_MODEL, NO_PREVIOUS, INVALID_ROLLBACK, DATABASE),
    openapi_extra=json_request(RollbackRequest, required=False),
)
async def rollback(
    name: str,
    actor: Admin,
    body: Annotated[RollbackRequest, Depends(json_model(RollbackRequest, optional=True))],
    platform: PlatformDep,
) -> RolledBack:
    """Put the previous champion back; the one it replaces is retired, so a second rollback
    goes one step further back."""
    return await run_in_threadpool(platform.rollback, name, actor=actor, reason=body.reason)


@router.get("/events", responses=failures("v1", ADMIN_TOKEN, NO_MODEL_EVER, DATABASE))
async def list_events(
    platform: PlatformDep,
    _: Admin,
    model: Annotated[str | None, Query(description="Only this model's entries.")] = None,
) -> list[EventRecord]:
    """The audit log, newest first (at most 200 entries), of one model when `model` is given
    (a deleted model's entries stay, under its name)."""
    return await run_in_threadpool(platform.events, model)
