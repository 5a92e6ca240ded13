"""Models, their versions and artifacts, and the champion pointer.

Promotion and rollback change the champion, the demoted version and the audit log in the
caller's transaction; the partial unique index on `stage = 'champion'` makes a second champion
impossible even if two processes race.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import events
from registry.errors import Conflict, NotFound, excerpt
from registry.models import Artifact, Model, ModelVersion, Stage, utcnow
from tuning.spec import ModelSpec


def create_model(session: Session, spec: ModelSpec, *, actor: str) -> Model:
    if session.scalar(select(Model.id).where(Model.name == spec.name)) is not None:
        raise Conflict(f"model {spec.name!r} exists already")
    model = Model(name=spec.name, spec=spec.model_dump(mode="json"), classes=spec.classes)
    session.add(model)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"model {spec.name!r} exists already") from exc
    events.record(session, model.id, "model_created", actor=actor, detail={"spec": model.spec})
    return model


def get_model(session: Session, name: str, *, lock: bool = False) -> Model:
    """The model by name; `lock` serialises writers of its versions (no-op on SQLite,
    whose transactions already take the write lock at BEGIN)."""
    query = select(Model).where(Model.name == name)
    if lock:
        query = query.with_for_update()
    model = session.scalar(query)
    if model is None:
        raise NotFound(f"model {excerpt(name)} not found")
    return model


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def spec_of(model: Model) -> ModelSpec:
    return ModelSpec.model_validate(model.spec)


def put_artifact(session: Session, kind: str, data: bytes) -> str:
    """Store bytes by their sha256 (idempotent) and return the hash."""
    digest = hashlib.sha256(data).hexdigest()
    if session.get(Artifact, digest) is None:
        session.add(Artifact(sha256=digest, kind=kind, size=len(data), data=data))
        session.flush()
    return digest


def get_artifact(session: Session, digest: str) -> bytes:
    """The artifact's bytes, refused if they no longer hash to their name."""
    artifact = session.get(Artifact, digest)
    if artifact is None:
        raise NotFound(f"artifact {digest} not found")
    data = bytes(artifact.data)
    if hashlib.sha256(data).hexdigest() != digest:
        raise Conflict(f"artifact {digest} is corrupt: its sha256 does not match")
    return data


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
