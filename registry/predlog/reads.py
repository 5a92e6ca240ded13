"""Reading the prediction log back: which ids it holds, what it logged for each, and the
newest inputs.

A batch's rows carry the positions `first_position`, `first_position + 1`, ... in their ids;
the first position is 0 except for the one-row batches that keep ids issued before the log
took its present form (revision 0005).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from registry.models import ModelVersion, PredictionBatch
from registry.predlog.ids import locate
from tuning.spec import ModelSpec


@dataclass(frozen=True)
class Logged:
    """One logged prediction: the features as the model saw them and what it answered."""

    features: dict[str, Any]
    version: int
    answer: Any  # a classifier's label or a regressor's value; None if it was not finite
    at: datetime
    probabilities: np.ndarray | None  # a classifier's row of class probabilities
    positions: dict[str, int] | None  # each class's column in `probabilities`


def missing_predictions(session: Session, model_id: int, ids: Iterable[str]) -> set[str]:
    """The ids that no logged prediction of this model has."""
    wanted = set(ids)
    found = _located(session, model_id, wanted)
    return wanted - {pid for pid, _, _ in found}


def logged_predictions(
    session: Session, model_id: int, spec: ModelSpec, ids: Iterable[str]
) -> dict[str, Logged]:
    """What the log holds for each of these ids that it has, each batch decoded once."""
    batches = _located(
        session,
        model_id,
        ids,
        PredictionBatch.version,
        PredictionBatch.created_at,
        PredictionBatch.numeric,
        PredictionBatch.categorical,
        PredictionBatch.labels,
        PredictionBatch.probabilities,
    )
    numeric_names = spec.numeric_features
    classes = _version_classes(session, model_id)
    positions = {v: {c: i for i, c in enumerate(names)} for v, names in classes.items()}
    decoded: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    found: dict[str, Logged] = {}
    for pid, batch, at in batches:
        if batch.id not in decoded:
            names = classes.get(batch.version)
            probas = None
            if batch.probabilities is not None and names:
                probas = _matrix(batch.probabilities, batch.rows, len(names))
            decoded[batch.id] = (_matrix(batch.numeric, batch.rows, len(numeric_names)), probas)
        matrix, probas = decoded[batch.id]
        features = dict(zip(numeric_names, _floats(matrix[at]), strict=True))
        for name, values in (batch.categorical or {}).items():
            features[name] = values[at]
        found[pid] = Logged(
            features,
            batch.version,
            batch.labels[at],
            batch.created_at,
            None if probas is None else probas[at],
            positions.get(batch.version),
        )
    return found


def recent_features(
    session: Session, model_id: int, spec: ModelSpec, *, rows: int
) -> dict[str, list[Any]]:
    """The features of about the newest `rows` logged predictions (whole batches, newest
    first, until enough), oldest first: numbers as floats (NaN for missing), categories as
    logged (None for missing)."""
    batches, total = [], 0
    query = (
        select(PredictionBatch.rows, PredictionBatch.numeric, PredictionBatch.categorical)
        .where(PredictionBatch.model_id == model_id)
        .order_by(PredictionBatch.created_at.desc())
    )
    for batch in session.execute(query.execution_options(yield_per=64)):
        batches.append(batch)
        total += batch[0]
        if total >= rows:
            break
    numeric_names = spec.numeric_features
    columns: dict[str, list[Any]] = {f.name: [] for f in spec.features}
    for n, numeric, categorical in reversed(batches):
        matrix = _matrix(numeric, n, len(numeric_names))
        for j, name in enumerate(numeric_names):
            columns[name].extend(matrix[:, j].astype(np.float64).tolist())
        for name in spec.categorical_features:
            columns[name].extend((categorical or {}).get(name, [None] * n))
    return columns


def _located(
    session: Session, model_id: int, ids: Iterable[str], *columns: Any
) -> Iterator[tuple[str, Row[Any], int]]:
    """(id, its batch's id, rows, first position and `columns`, its row in the batch) for each
    of these ids that a logged prediction of the model has; each batch is read once."""
    located = {pid: where for pid in set(ids) if (where := locate(pid)) is not None}
    wanted = {batch for batch, _ in located.values()}
    if not wanted:
        return
    query = select(
        PredictionBatch.id, PredictionBatch.rows, PredictionBatch.first_position, *columns
    ).where(PredictionBatch.model_id == model_id, PredictionBatch.id.in_(wanted))
    batches = {batch[0]: batch for batch in session.execute(query)}
    for pid, (batch_id, position) in located.items():
        batch = batches.get(batch_id)
        if batch is not None and 0 <= (at := position - batch.first_position) < batch.rows:
            yield pid, batch, at


def _matrix(data: bytes, rows: int, width: int) -> np.ndarray:
    """A logged float32 matrix [rows, width] (numeric features, or probabilities)."""
    return np.frombuffer(data, dtype="<f4").reshape(rows, width)


def _version_classes(session: Session, model_id: int) -> dict[int, list[str]]:
    """Each version's classes in the order of its probability columns."""
    rows = session.execute(
        select(ModelVersion.version, ModelVersion.classes).where(
            ModelVersion.model_id == model_id, ModelVersion.classes.is_not(None)
        )
    )
    return {version: classes for version, classes in rows if classes}


def _floats(values: np.ndarray) -> list[float | None]:
    """float32 values as the shortest decimals that round to them (0.1, not 0.100000001),
    NaN as None: what the client most likely sent, and exactly what the graph saw."""
    return [None if v != v else float(str(v)) for v in values]
