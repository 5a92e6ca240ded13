"""The audit log: every change of who serves is recorded in the transaction that makes it.

Entries keep their model's name, so the log still says which model an entry was about after the
model is deleted (its `model_deleted` entry included)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Event, Model, storable


def record(
    session: Session,
    model_id: int | None,
    kind: str,
    *,
    actor: str,
    version: int | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
    model_name: str | None = None,
) -> Event:
    """Add an entry; the model's name is looked up from `model_id` unless given (an entry
    about a model that is gone names it with `model_name` alone)."""
    if model_name is None and model_id is not None:
        model = session.get(Model, model_id)
        model_name = model.name if model is not None else None
    event = Event(
        model_id=model_id,
        model_name=model_name,
        kind=kind,
        actor=actor,
        version=version,
        reason=reason,
        detail=detail or {},
    )
    session.add(event)
    return event


def list_events(session: Session, model: str | None = None, limit: int = 200) -> list[dict]:
    """Newest first, optionally of one model name (a deleted model's entries included)."""
    query = select(Event)
    if model is not None:
        if not storable(model):
            return []
        query = query.where(Event.model_name == model)
    rows = session.scalars(query.order_by(Event.id.desc()).limit(limit)).all()
    return [
        {
            "id": e.id,
            "model": e.model_name,
            "kind": e.kind,
            "actor": e.actor,
            "version": e.version,
            "reason": e.reason,
            "detail": e.detail,
            "at": e.created_at.isoformat(),
        }
        for e in rows
    ]
