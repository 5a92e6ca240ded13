"""The audit log: every change of who serves is recorded in the transaction that makes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Event, Model


def record(
    session: Session,
    model_id: int | None,
    kind: str,
    *,
    actor: str,
    version: int | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        model_id=model_id,
        kind=kind,
        actor=actor,
        version=version,
        reason=reason,
        detail=detail or {},
    )
    session.add(event)
    return event


def list_events(session: Session, model: str | None = None, limit: int = 200) -> list[dict]:
    """Newest first, optionally for one model name."""
    query = select(Event, Model.name).outerjoin(Model, Event.model_id == Model.id)
    if model is not None:
        query = query.where(Model.name == model)
    rows = session.execute(query.order_by(Event.id.desc()).limit(limit)).all()
    return [
        {
            "id": e.id,
            "model": name,
            "kind": e.kind,
            "actor": e.actor,
            "version": e.version,
            "reason": e.reason,
            "detail": e.detail,
            "at": e.created_at.isoformat(),
        }
        for e, name in rows
    ]
