"""What monitoring reads and writes: served outcomes, the newest inputs, detected changes.

Everything here is a query over rows every replica and worker shares, so live performance and
the detectors' view are the same everywhere and survive restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry import catalog, events
from registry.models import Event, LabelledRow, Model
from registry.predlog import reads
from tuning import data as tdata
from tuning.live import LiveRows
from tuning.spec import ModelSpec

CHANGE_EVENTS = ("change_detected", "data_drift_detected")
VERSION_EVENTS = ("promoted", "rolled_back")


def outcomes(
    session: Session, model_id: int, spec: ModelSpec, *, limit: int, version: int | None = None
) -> LiveRows:
    """The newest `limit` labelled served predictions of a model (of one version if given)."""
    query = select(
        LabelledRow.predicted_at,
        LabelledRow.served_version,
        LabelledRow.label,
        LabelledRow.served,
        LabelledRow.error,
        LabelledRow.true_proba,
    ).where(LabelledRow.model_id == model_id, LabelledRow.error.is_not(None))
    if version is not None:
        query = query.where(LabelledRow.served_version == version)
    rows = session.execute(
        query.order_by(LabelledRow.predicted_at.desc(), LabelledRow.id.desc()).limit(limit)
    ).all()[::-1]
    errors = np.array([r[4] for r in rows], dtype=np.float64)
    if spec.task == "regression":
        labels = np.array([r[2] for r in rows], dtype=np.float64)
        # Only |error| is kept: every regression metric (rmse, mae, r2) depends on the served
        # value only through it, so label + |error| stands in for the served value.
        served = labels + errors
    else:
        labels = np.array([str(r[2]) for r in rows], dtype=object)
        served = np.array([str(r[3]) for r in rows], dtype=object)
    return LiveRows(
        at=[r[0] for r in rows],
        versions=np.array([r[1] for r in rows], dtype=np.int64),
        labels=labels,
        served=served,
        errors=errors,
        true_proba=np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=np.float64),
    )


def error_stream(
    session: Session, model_id: int, *, after_row_id: int, limit: int
) -> tuple[list[int], list[float]]:
    """Row ids and errors of the model's labelled predictions after a row id, whichever version
    served them, in arrival order: what the concept detector replays. At most the newest
    `limit`."""
    rows = session.execute(
        select(LabelledRow.id, LabelledRow.error)
        .where(
            LabelledRow.model_id == model_id,
            LabelledRow.id > after_row_id,
            LabelledRow.error.is_not(None),
        )
        .order_by(LabelledRow.id.desc())
        .limit(limit)
    ).all()[::-1]
    return [r[0] for r in rows], [float(cast(float, r[1])) for r in rows]  # never NULL here


def rows_since(session: Session, model_id: int, row_id: int) -> int:
    """Labelled rows of a model from `row_id` on (the rows of a new regime)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(LabelledRow)
            .where(LabelledRow.model_id == model_id, LabelledRow.id >= row_id)
        )
        or 0
    )


YOUNG_REGIME_ROWS = 2000  # rows after a detected change during which the monitor drives retrains


def young_regime(session: Session, model: Model) -> bool:
    """Whether the model's newest detected change is under YOUNG_REGIME_ROWS rows old: then
    the monitor's reaction retrains follow the new rows, and the label-count trigger waits."""
    change = model.change or {}
    start = change.get("start_row_id")
    if start is None or not change.get("reaction_job"):
        return False
    return rows_since(session, model.id, start) < YOUNG_REGIME_ROWS


def recent_inputs(session: Session, model_id: int, spec: ModelSpec, *, rows: int) -> pd.DataFrame:
    """The features of about the newest `rows` logged predictions, as a feature frame."""
    columns = reads.recent_features(session, model_id, spec, rows=rows)
    return tdata.normalize(spec, pd.DataFrame(columns, columns=spec.feature_names))


def training_inputs(
    session: Session, model_id: int, spec: ModelSpec, window: dict[str, Any], *, rows: int
) -> pd.DataFrame:
    """The features of (the newest `rows` of) the labelled rows a version trained on."""
    first, last = window.get("first_row_id"), window.get("last_row_id")
    query = select(LabelledRow.features).where(LabelledRow.model_id == model_id)
    if first is not None:
        query = query.where(LabelledRow.id >= first)
    if last is not None:
        query = query.where(LabelledRow.id <= last)
    found = session.scalars(query.order_by(LabelledRow.id.desc()).limit(rows)).all()[::-1]
    return tdata.frame(spec, list(found))


def record_change(
    session: Session, model: Model, kind: str, *, reason: str, detail: dict[str, Any]
) -> Event:
    """Keep a detected change on the model and in the audit log, in the caller's
    transaction (the caller holds the model's lock)."""
    if kind == "change_detected":
        model.change = detail
    champion = catalog.champion(session, model.id)
    version = champion.version if champion is not None else None
    return events.record(
        session, model.id, kind, actor="monitor", version=version, reason=reason, detail=detail
    )


def timeline(session: Session, model_id: int, *, since: datetime | None) -> list[dict[str, Any]]:
    """Version changes and detected changes, oldest first: the marks of a performance plot."""
    query = select(Event).where(
        Event.model_id == model_id, Event.kind.in_(VERSION_EVENTS + CHANGE_EVENTS)
    )
    if since is not None:
        query = query.where(Event.created_at >= since)
    return [
        {
            "at": e.created_at.isoformat(),
            "kind": e.kind,
            "version": e.version,
            "reason": e.reason,
        }
        for e in session.scalars(query.order_by(Event.id))
    ]


def detected_kinds(
    session: Session, model_id: int, version: int, *, since: datetime | None
) -> set[str]:
    """The kinds of change (CHANGE_EVENTS) recorded for a version of a model, from `since` on
    (e.g. its latest promotion, so a version rolled back to starts clean)."""
    query = select(Event.kind).where(
        Event.model_id == model_id, Event.kind.in_(CHANGE_EVENTS), Event.version == version
    )
    if since is not None:
        query = query.where(Event.created_at >= since)
    return set(session.scalars(query.distinct()))
