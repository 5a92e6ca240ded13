"""Models, their versions and artifacts, and the champion pointer.

Promotion and rollback change the champion, the demoted version and the audit log in the
caller's transaction; the partial unique index on `stage = 'champion'` makes a second champion
impossible even if two processes race. Deleting a model takes everything that is its own with
it in one transaction, and leaves its audit log and the artifacts other models share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import events, jobs
from registry.errors import Conflict, CorruptArtifact, NotFound, excerpt
from registry.models import (
    JOB_OPEN,
    Artifact,
    Job,
    LabelledRow,
    Model,
    ModelVersion,
    PredictionBatch,
    Stage,
    storable,
    utcnow,
)
from tuning.spec import ModelSpec

# The lock that creations take in turn on PostgreSQL ("loopserv" as a 64-bit key).
CREATE_LOCK = int.from_bytes(b"loopserv", "big")


def create_model(
    session: Session, spec: ModelSpec, *, actor: str, max_models: int | None = None
) -> Model:
    """Create a model; Conflict when the name is taken or `max_models` models exist already.
    Creations take turns until the caller commits, so concurrent ones never pass the limit
    together."""
    _take_turns_creating(session)
    if session.scalar(select(Model.id).where(Model.name == spec.name)) is not None:
        raise Conflict(f"model {spec.name!r} exists already")
    if max_models is not None:
        count = session.scalar(select(func.count()).select_from(Model)) or 0
        if count >= max_models:
            raise Conflict(
                f"this deployment holds {count} models, its limit (LOOPSERVE_MAX_MODELS="
                f"{max_models}): delete a model before creating another"
            )
    model = Model(name=spec.name, spec=spec.model_dump(mode="json"), classes=spec.classes)
    session.add(model)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"model {spec.name!r} exists already") from exc
    events.record(session, model.id, "model_created", actor=actor, detail={"spec": model.spec})
    return model


def _take_turns_creating(session: Session) -> None:
    """Hold the creation lock until the transaction ends: a transaction-level advisory lock on
    PostgreSQL; on SQLite a writing transaction holds the database's lock from its start
    (registry.db), so creations take turns already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CREATE_LOCK)))


def get_model(session: Session, name: str, *, lock: bool = False) -> Model:
    """The model by name; `lock` serialises writers of its versions (no-op on SQLite,
    whose transactions already take the write lock at BEGIN)."""
    query = select(Model).where(Model.name == name)
    if lock:
        query = query.with_for_update()
    model = session.scalar(query) if storable(name) else None
    if model is None:
        raise NotFound(f"model {excerpt(name)} not found")
    return model


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def spec_of(model: Model) -> ModelSpec:
    return ModelSpec.model_validate(model.spec)


def put_artifact(session: Session, kind: str, data: bytes) -> str:
    """Store bytes by their sha256 (idempotent) and return the hash.

    An artifact stored already is share-locked until the caller commits the version that
    refers to it, so deleting another model that shares it (`delete_model`) cannot remove it
    meanwhile (no-op on SQLite, whose writers take turns)."""
    digest = hashlib.sha256(data).hexdigest()
    stored = select(Artifact.sha256).where(Artifact.sha256 == digest)
    if session.scalar(stored.with_for_update(read=True, key_share=True)) is None:
        session.add(Artifact(sha256=digest, kind=kind, size=len(data), data=data))
        session.flush()
    return digest


def get_artifact(session: Session, digest: str) -> bytes:
    """The artifact's bytes; CorruptArtifact if they no longer hash to their name."""
    artifact = session.get(Artifact, digest)
    if artifact is None:
        raise NotFound(f"artifact {digest} not found")
    data = bytes(artifact.data)
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptArtifact(f"artifact {digest} is corrupt: its sha256 does not match")
    return data


def version_onnx(session: Session, model: Model, version: ModelVersion) -> bytes:
    """A version's ONNX graph, checked against the sha256 the registry stores for it;
    CorruptArtifact naming the version and the artifact when its bytes no longer match."""
    try:
        return get_artifact(session, version.onnx_sha256)
    except CorruptArtifact as exc:
        raise CorruptArtifact(
            f"model {model.name!r} v{version.version}: its ONNX artifact {version.onnx_sha256} "
            "is corrupt (its bytes no longer match their sha256), so it is not sent; restore "
            "the database from a backup"
        ) from exc


def unusable(exc: Exception) -> str:
    """Why an artifact could not be used (corrupt, or refused by what loads it), in one short
    line that leaves naming the artifact to the caller."""
    if isinstance(exc, CorruptArtifact):
        return "its bytes no longer match their sha256"
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"[:300]


def champion(session: Session, model_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model_id, ModelVersion.stage == Stage.CHAMPION
        )
    )


def versions(session: Session, model_id: int) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model_id)
            .order_by(ModelVersion.version)
        )
    )


def get_version(session: Session, model: Model, version: int) -> ModelVersion:
    found = session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    )
    if found is None:
        raise NotFound(f"model {model.name!r} has no version {version}")
    return found


@dataclass(frozen=True)
class NewVersion:
    """What the worker hands over to register a trained, exported, parity-checked pipeline."""

    kind: str
    onnx: bytes
    pipeline: bytes | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_window: dict[str, Any]
    classes: list[str] | None
    parent_version: int | None
    reason: str
    job_id: str | None


def register_version(
    session: Session, model: Model, new: NewVersion, *, stage: Stage
) -> ModelVersion:
    """Add the next version number of a model (the caller holds the model lock)."""
    number = (
        session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
        )
        or 0
    ) + 1
    row = ModelVersion(
        model_id=model.id,
        version=number,
        stage=stage,
        kind=new.kind,
        onnx_sha256=put_artifact(session, "onnx", new.onnx),
        pipeline_sha256=put_artifact(session, "skops", new.pipeline) if new.pipeline else None,
        params=new.params,
        metrics=new.metrics,
        data_window=new.data_window,
        classes=new.classes,
        parent_version=new.parent_version,
        reason=new.reason,
        job_id=new.job_id,
    )
    session.add(row)
    session.flush()
    return row


def promote(
    session: Session, model: Model, target: ModelVersion, *, actor: str, reason: str
) -> ModelVersion | None:
    """Make `target` the champion; the old one is archived. Returns the demoted version."""
    if target.stage == Stage.CHAMPION:
        raise Conflict(f"version {target.version} is the champion already")
    previous = champion(session, model.id)
    if previous is not None:
        previous.stage = Stage.ARCHIVED
        session.flush()  # free the single-champion slot before taking it
    target.stage = Stage.CHAMPION
    target.promoted_at = utcnow()
    session.flush()
    events.record(
        session,
        model.id,
        "promoted",
        actor=actor,
        version=target.version,
        reason=reason,
        detail={"previous_version": previous.version if previous else None},
    )
    return previous


def rollback(session: Session, model: Model, *, actor: str, reason: str) -> ModelVersion:
    """Put the previous champion back; the current one is retired so a second rollback
    goes one step further back instead of toggling."""
    current = champion(session, model.id)
    if current is None:
        raise Conflict(f"model {model.name!r} has no champion to roll back")
    previous = session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.model_id == model.id,
            ModelVersion.stage == Stage.ARCHIVED,
            ModelVersion.promoted_at.is_not(None),
        )
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.version.desc())
        .limit(1)
    )
    if previous is None:
        raise Conflict(f"model {model.name!r} has no previous champion to roll back to")
    current.stage = Stage.RETIRED
    session.flush()
    previous.stage = Stage.CHAMPION
    previous.promoted_at = utcnow()
    session.flush()
    events.record(
        session,
        model.id,
        "rolled_back",
        actor=actor,
        version=previous.version,
        reason=reason,
        detail={"retired_version": current.version},
    )
    return previous


def champion_pointers(session: Session) -> dict[str, tuple[int, str]]:
    """{model name: (champion version, onnx sha256)}: what every API replica polls."""
    rows = session.execute(
        select(Model.name, ModelVersion.version, ModelVersion.onnx_sha256)
        .join(ModelVersion, ModelVersion.model_id == Model.id)
        .where(ModelVersion.stage == Stage.CHAMPION)
    ).all()
    return {name: (version, sha) for name, version, sha in rows}


def model_names(session: Session) -> set[str]:
    """Every model's name, champion or not: what an API replica polls beside the pointers, to
    tell an unknown model from one not served yet without a query per request."""
    return set(session.scalars(select(Model.name)))


def delete_model(session: Session, name: str, *, actor: str) -> dict[str, Any]:
    """Delete a model with all that is its own: versions, labelled rows, prediction log, jobs,
    and the artifacts no other model's version shares. Returns what went, as its
    `model_deleted` audit entry records it; the audit log keeps its entries, naming it.

    Open jobs are superseded first and then deleted: a worker still on one finds it gone and
    drops its work (registry.jobs). The model's open jobs are locked before the model, the order
    in which a worker registering a result takes them.
    """
    model_id = (
        session.scalar(select(Model.id).where(Model.name == name)) if storable(name) else None
    )
    if model_id is None:
        raise NotFound(f"model {excerpt(name)} not found")
    session.scalars(
        select(Job.id).where(Job.model_id == model_id, Job.status.in_(JOB_OPEN)).with_for_update()
    ).all()
    model = get_model(session, name, lock=True)
    open_jobs = session.scalars(
        select(Job).where(Job.model_id == model.id, Job.status.in_(JOB_OPEN))
    ).all()
    for job in open_jobs:
        jobs.supersede(session, job, reason="its model is being deleted", actor=actor)
    current = champion(session, model.id)
    artifacts = _artifacts_of(session, model.id)
    session.flush()  # the supersede entries, while their model exists
    logged = select(func.coalesce(func.sum(PredictionBatch.rows), 0)).where(
        PredictionBatch.model_id == model.id
    )
    detail: dict[str, Any] = {
        "champion_version": current.version if current is not None else None,
        "versions": _delete(session, ModelVersion, model.id),
        "labelled_rows": _delete(session, LabelledRow, model.id),
        "predictions": int(session.scalar(logged) or 0),
        "jobs": _delete(session, Job, model.id),
        "cancelled_jobs": [job.id for job in open_jobs],
    }
    _delete(session, PredictionBatch, model.id)  # the log's rows, which held `predictions`
    session.execute(delete(Model).where(Model.id == model.id))
    kept = [digest for digest in sorted(artifacts) if not _drop_artifact(session, digest)]
    detail["artifacts_deleted"] = len(artifacts) - len(kept)
    detail["artifacts_kept"] = len(kept)
    events.record(
        session,
        None,
        "model_deleted",
        actor=actor,
        model_name=name,
        version=detail["champion_version"],
        reason="deleted with its versions, labelled rows, prediction log and jobs",
        detail=detail,
    )
    return detail


def _artifacts_of(session: Session, model_id: int) -> set[str]:
    """The content hashes the model's versions refer to (ONNX graphs and pipelines)."""
    rows = session.execute(
        select(ModelVersion.onnx_sha256, ModelVersion.pipeline_sha256).where(
            ModelVersion.model_id == model_id
        )
    ).all()
    return {digest for row in rows for digest in row if digest is not None}


def _delete(
    session: Session, table: type[ModelVersion | LabelledRow | PredictionBatch | Job], model_id: int
) -> int:
    """Delete the model's rows of a table; how many there were."""
    # A DELETE answers a cursor result, which counts the rows it deleted.
    result = cast(
        CursorResult[Any],
        session.execute(
            delete(table).where(table.model_id == model_id),
            execution_options={"synchronize_session": False},
        ),
    )
    return result.rowcount


def _drop_artifact(session: Session, digest: str) -> bool:
    """Delete an artifact no version refers to any more; False when one still does (another
    model shares it, or a version committed meanwhile refers to it)."""
    shared = select(ModelVersion.id).where(
        or_(ModelVersion.onnx_sha256 == digest, ModelVersion.pipeline_sha256 == digest)
    )
    if session.scalar(shared.limit(1)) is not None:
        return False
    try:
        with session.begin_nested():
            session.execute(delete(Artifact).where(Artifact.sha256 == digest))
    except IntegrityError:
        return False
    return True
