"""Labelled rows (uploads and feedback) and the prediction log.

Feedback is all or nothing: a batch is validated as a whole and stored in one transaction, so a
2xx means every label is committed and a 4xx means none is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.errors import InvalidData
from registry.models import LabelledRow, Model, ModelVersion, Prediction, PredictionBatch
from registry.validation import Problem, feature_problems, label_problem
from tuning.spec import ModelSpec


def known_classes(model: Model) -> set[str] | None:
    return set(model.classes) if model.classes else None


def add_rows(session: Session, model: Model, spec: ModelSpec, rows: list[Any]) -> int:
    """Store uploaded training rows (features and target in one mapping)."""
    fixed = spec.classes is not None
    classes = set(spec.classes) if fixed else None
    problems: list[Problem] = []
    clean: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        field = f"rows[{i}]"
        found = feature_problems(spec, row, i, field=field)
        if isinstance(row, dict) and spec.target not in row:
            found.append({"row": i, "field": f"{field}.{spec.target}", "message": "missing target"})
        problems.extend(found)
        if found:
            continue
        label, problem = label_problem(spec, row[spec.target], classes, i, f"{field}.{spec.target}")
        if problem:
            problems.append(problem)
            continue
        features = {name: row[name] for name in spec.feature_names}
        clean.append(
            {"model_id": model.id, "features": features, "label": label, "source": "upload"}
        )
    if problems:
        raise InvalidData(f"{len(problems)} invalid value(s) in rows", problems)
    if not clean:
        return 0
    session.execute(insert(LabelledRow), clean)
    if spec.task == "classification" and not fixed:
        model.classes = sorted(set(model.classes or []) | {r["label"] for r in clean})
    return len(clean)


# Positions as they appear in ids, formatted once for the sizes logged batches commonly have.
_POSITIONS = tuple(f"{position:08x}" for position in range(20_000))


def prediction_ids(batch_id: str, rows: int, first: int = 0) -> list[str]:
    """The ids of `rows` rows of a logged batch from position `first`: the batch id and each
    row's position."""
    if first + rows <= len(_POSITIONS):
        return list(map(batch_id.__add__, _POSITIONS[first : first + rows]))
    return [f"{batch_id}{position:08x}" for position in range(first, first + rows)]


def _locate(prediction_id: str) -> tuple[str, int] | None:
    """(batch id, position) of a well-formed prediction id, else None."""
    if len(prediction_id) != 32:
        return None
    try:
        return prediction_id[:24], int(prediction_id[24:], 16)
    except ValueError:
        return None


def _batches(session: Session, model_id: int, batch_ids: Iterable[str]) -> dict[str, Any]:
    """These logged batches of the model, each read once."""
    wanted = set(batch_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(
            PredictionBatch.id,
            PredictionBatch.rows,
            PredictionBatch.numeric,
            PredictionBatch.categorical,
            PredictionBatch.features,
            PredictionBatch.version,
            PredictionBatch.labels,
            PredictionBatch.probabilities,
            PredictionBatch.created_at,
        ).where(PredictionBatch.model_id == model_id, PredictionBatch.id.in_(wanted))
    )
    return {batch: rest for batch, *rest in rows}


def _logged(session: Session, model_id: int, ids: Iterable[str]) -> Iterator[tuple[str, Any, int]]:
    """(id, its batch's row, its position) for each id that a logged prediction has.

    An id names its batch and position itself; only ids that do not resolve so are looked up
    among the `predictions` rows of ids issued before revision 0003.
    """
    ids = set(ids)
    located = {pid: where for pid in ids if (where := _locate(pid)) is not None}
    batches = _batches(session, model_id, (batch for batch, _ in located.values()))
    unresolved = {pid for pid in ids if located.get(pid, ("", 0))[0] not in batches}
    if unresolved:
        issued_before = session.execute(
            select(Prediction.id, Prediction.batch_id, Prediction.position).where(
                Prediction.model_id == model_id, Prediction.id.in_(unresolved)
            )
        )
        older = {pid: (batch, position) for pid, batch, position in issued_before}
        located.update(older)
        batches.update(_batches(session, model_id, (batch for batch, _ in older.values())))
    for pid, (batch, at) in located.items():
        if batch in batches and at < batches[batch][0]:
            yield pid, batches[batch], at


def missing_predictions(session: Session, model_id: int, ids: Iterable[str]) -> set[str]:
    """The ids that no logged prediction of this model has."""
    wanted = set(ids)
    return wanted - {pid for pid, _, _ in _logged(session, model_id, wanted)}


def add_feedback(session: Session, model: Model, spec: ModelSpec, labels: list[Any]) -> int:
    """Store true labels, by prediction id or with explicit features.

    A prediction id labelled again replaces its earlier label: it never counts twice.
    """
    classes = known_classes(model) if spec.task == "classification" else None
    problems: list[Problem] = []
    by_id: dict[str, tuple[int, Any]] = {}
    explicit: list[dict[str, Any]] = []
    for i, item in enumerate(labels):
        field = f"labels[{i}]"
        if not isinstance(item, dict) or "label" not in item:
            problems.append({"row": i, "field": f"{field}.label", "message": "missing label"})
            continue
        has_id, has_features = "prediction_id" in item, "features" in item
        if has_id == has_features:
            problems.append(
                {
                    "row": i,
                    "field": field,
                    "message": "give exactly one of prediction_id or features",
                }
            )
            continue
        label, problem = label_problem(spec, item["label"], classes, i, f"{field}.label")
        if problem:
            problems.append(problem)
        if has_id:
            pid = item["prediction_id"]
            if not isinstance(pid, str) or not pid:
                problems.append(
                    {
                        "row": i,
                        "field": f"{field}.prediction_id",
                        "message": "must be a prediction id string",
                    }
                )
            elif not problem:
                by_id[pid] = (i, label)  # the last label of an id in a batch wins
            continue
        found = feature_problems(spec, item["features"], i, field=f"{field}.features")
        problems.extend(found)
        if not found and not problem:
            features = {name: item["features"][name] for name in spec.feature_names}
            explicit.append(
                {"model_id": model.id, "features": features, "label": label, "source": "feedback"}
            )
    stored, served = _logged_rows(session, model.id, spec, by_id)
    for pid, (i, _) in by_id.items():
        if pid not in stored:
            problems.append(
                {
                    "row": i,
                    "field": f"labels[{i}].prediction_id",
                    "message": f"unknown prediction id {pid!r}",
                }
            )
    if problems:
        problems.sort(key=lambda p: p["row"])
        raise InvalidData(f"{len(problems)} invalid label(s); none was stored", problems)
    if explicit:
        session.execute(insert(LabelledRow), explicit)
    if by_id:
        _upsert_by_prediction(
            session,
            [
                {
                    "model_id": model.id,
                    "prediction_id": pid,
                    "features": stored[pid],
                    "label": label,
                    "source": "feedback",
                    **served[pid].outcome(label),
                }
                for pid, (_, label) in by_id.items()
            ],
        )
    return len(explicit) + len(by_id)


@dataclass(frozen=True)
class Served:
    """What the log says was served for one prediction: version, answer, when, and its row of
    class probabilities with the version's class positions (None for a regressor or an older
    log row)."""

    version: int | None
    answer: Any
    at: datetime | None
    probabilities: np.ndarray | None = None
    positions: dict[str, int] | None = None

    def outcome(self, label: Any) -> dict[str, Any]:
        """The labelled row's record of how the served answer did against the true label."""
        error, served = None, None
        if self.answer is not None:
            if isinstance(label, str):
                served = str(self.answer)
                error = 0.0 if served == label else 1.0
            else:
                error = abs(float(self.answer) - float(label))
        proba = None
        if self.probabilities is not None and self.positions is not None:
            at = self.positions.get(str(label))
            proba = 0.0 if at is None else float(self.probabilities[at])
        return {
            "served_version": self.version,
            "served": served,
            "error": error,
            "true_proba": proba,
            "predicted_at": self.at,
        }


NOT_SERVED = Served(None, None, None)


def _logged_rows(
    session: Session, model_id: int, spec: ModelSpec, ids: Iterable[str]
) -> tuple[dict[str, dict], dict[str, Served]]:
    """The logged features of each known prediction id and what was served for it, read from
    its batch (each batch's JSON and matrices decoded once)."""
    numeric_names = spec.numeric_features
    features_of: dict[str, dict] = {}
    served_of: dict[str, Served] = {}
    decoded: dict[int, tuple[np.ndarray | None, list[Any] | None, np.ndarray | None]] = {}
    classes = _version_classes(session, model_id)
    positions = {v: {c: i for i, c in enumerate(names)} for v, names in classes.items()}
    for pid, batch, at in _logged(session, model_id, ids):
        rows, numeric, categorical, legacy, version, labels, probabilities, created = batch
        if numeric is None:  # logged before revision 0003: JSON by feature
            features_of[pid] = {name: values[at] for name, values in legacy.items()}
            served_of[pid] = NOT_SERVED
            continue
        key = id(batch)
        if key not in decoded:
            matrix = np.frombuffer(numeric, dtype="<f4").reshape(rows, len(numeric_names))
            answers = labels if isinstance(labels, list) else None
            names = classes.get(version)
            probas = None
            if probabilities is not None and names:
                probas = np.frombuffer(probabilities, dtype="<f4").reshape(rows, len(names))
            decoded[key] = (matrix, answers, probas)
        matrix, answers, probas = decoded[key]
        features = dict(zip(numeric_names, _floats(matrix[at]), strict=True))
        for name, values in (categorical or {}).items():
            features[name] = values[at]
        features_of[pid] = features
        served_of[pid] = Served(
            version,
            None if answers is None else answers[at],
            created,
            None if probas is None else probas[at],
            positions.get(version),
        )
    return features_of, served_of


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


def _upsert_by_prediction(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LabelledRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "prediction_id"],
        set_={
            name: getattr(stmt.excluded, name)
            for name in ("label", "created_at", "error", "true_proba")
        },
    )
    session.execute(stmt, rows)


@dataclass(frozen=True)
class LoggedBatch:
    """One logged batch of predictions, serialised by the caller off the request path.

    `numeric` is the float32 matrix [rows, numeric features] as little-endian bytes, given as
    pieces to be joined in order (one per request: a COPY sends them without joining them),
    `probabilities` likewise [rows, classes] (None for a regressor); `categorical`
    ({feature: [value or None per row]}, None without categorical features) and `labels` come
    as UTF-8 JSON, which PostgreSQL's binary COPY takes as it is.
    """

    id: str  # 24 hex digits; its rows' prediction ids are prediction_ids(id, rows)
    model_id: int
    version: int
    created_at: datetime
    rows: int
    numeric: Sequence[bytes | memoryview]
    categorical: bytes | None
    labels: bytes
    probabilities: Sequence[bytes | memoryview] | None


_COLUMNS = "id, model_id, version, rows, numeric, categorical, labels, probabilities, created_at"
LOG_COPY = f"COPY prediction_batches ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"

# PostgreSQL's binary COPY format: a signature, flags and header-extension length, then per row
# the field count and each field as its byte length (-1 for NULL) and its bytes, then -1.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz counts microseconds from here


def copy_stream(batches: Sequence[LoggedBatch]) -> list[bytes | memoryview]:
    """The binary COPY data of LOG_COPY for these batches, as pieces to send in order.

    The float matrices and the JSON (whose binary form is its text) go in as they are: no
    escaping, no parsing, and no copy of the large pieces on this side.
    """
    pieces: list[bytes | memoryview] = [_SIGNATURE]
    for b in batches:
        ident = b.id.encode()
        at = b.created_at - _PG_EPOCH
        micros = (at.days * 86_400 + at.seconds) * 1_000_000 + at.microseconds
        head = struct.pack("!hi", 9, len(ident)) + ident
        head += struct.pack("!iqiiii", 8, b.model_id, 4, b.version, 4, b.rows)
        pieces.append(head)
        for value in (b.numeric, _one(b.categorical), _one(b.labels), b.probabilities):
            if value is None:
                pieces.append(_NULL)
            else:
                size = sum(memoryview(piece).nbytes for piece in value)
                pieces += (struct.pack("!i", size), *value)
        pieces.append(struct.pack("!iq", 8, micros))
    pieces.append(_TRAILER)
    return pieces


def _one(value: bytes | None) -> list[bytes] | None:
    return None if value is None else [value]


def _joined(pieces: Sequence[bytes | memoryview] | None) -> bytes | None:
    return None if pieces is None else b"".join(pieces)


def log_predictions(session: Session, batches: Sequence[LoggedBatch]) -> None:
    """Write logged batches, one row each: binary COPY on PostgreSQL, executemany elsewhere."""
    if not batches:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cur, cur.copy(LOG_COPY) as copy:
            for piece in copy_stream(batches):
                copy.write(piece)
        return
    rows = [
        (
            b.id,
            b.model_id,
            b.version,
            b.rows,
            _joined(b.numeric),
            _text(b.categorical),
            _text(b.labels),
            _joined(b.probabilities),
            _sqlite_time(b.created_at),
        )
        for b in batches
    ]
    connection.exec_driver_sql(
        f"INSERT INTO prediction_batches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )


def logged_batch_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of these batch ids the log holds: a write whose answer was lost may have
    committed."""
    wanted = list(ids)
    if not wanted:
        return set()
    found = session.scalars(select(PredictionBatch.id).where(PredictionBatch.id.in_(wanted)))
    return set(found)


def _text(json: bytes | None) -> str | None:
    """SQLite keeps JSON as TEXT, where SQLAlchemy's JSON type reads it."""
    return None if json is None else json.decode()


def _sqlite_time(at: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime writes, so the ORM reads these rows back."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def training_rows(
    session: Session, model_id: int, *, until_id: int | None = None
) -> tuple[list[int], list[dict[str, Any]], list[Any]]:
    """Row ids, features and labels, oldest first, up to and including `until_id`."""
    query = select(LabelledRow.id, LabelledRow.features, LabelledRow.label).where(
        LabelledRow.model_id == model_id
    )
    if until_id is not None:
        query = query.where(LabelledRow.id <= until_id)
    ids, features, labels = [], [], []
    for row_id, feats, label in session.execute(query.order_by(LabelledRow.id)):
        ids.append(row_id)
        features.append(feats)
        labels.append(label)
    return ids, features, labels


def last_row_id(session: Session, model_id: int) -> int | None:
    return session.scalar(select(func.max(LabelledRow.id)).where(LabelledRow.model_id == model_id))


def rows_after(session: Session, model_id: int, row_id: int | None) -> int:
    query = select(func.count()).select_from(LabelledRow).where(LabelledRow.model_id == model_id)
    if row_id is not None:
        query = query.where(LabelledRow.id > row_id)
    return session.scalar(query) or 0
