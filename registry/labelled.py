"""Labelled rows: uploads and feedback, the rows that training reads.

Feedback is all or nothing: a batch is validated as a whole and stored in one transaction, so a
2xx means every label is committed and a 4xx means none is. Feedback on a prediction id takes
the prediction's features, and what was served for it, from the prediction log
(registry.predlog).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.errors import InvalidData, excerpt
from registry.models import LabelledRow, Model
from registry.predlog.reads import Logged, logged_predictions
from registry.validation import Problem, feature_problems, label_problem
from tuning.spec import ModelSpec


def known_classes(model: Model) -> set[str] | None:
    return set(model.classes) if model.classes else None


def add_rows(session: Session, model: Model, spec: ModelSpec, rows: list[Any]) -> int:
    """Store uploaded training rows (features and target in one mapping)."""
    classes = set(spec.classes) if spec.classes is not None else None
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
    if spec.task == "classification" and classes is None:
        model.classes = sorted(set(model.classes or []) | {r["label"] for r in clean})
    return len(clean)


def add_feedback(session: Session, model: Model, spec: ModelSpec, labels: Sequence[Any]) -> int:
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
    logged = logged_predictions(session, model.id, spec, by_id)
    for pid, (i, _) in by_id.items():
        if pid not in logged:
            problems.append(
                {
                    "row": i,
                    "field": f"labels[{i}].prediction_id",
                    "message": f"unknown prediction id {excerpt(pid)}",
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
                    "features": logged[pid].features,
                    "label": label,
                    "source": "feedback",
                    **_outcome(logged[pid], label),
                }
                for pid, (_, label) in by_id.items()
            ],
        )
    return len(explicit) + len(by_id)


def _outcome(served: Logged, label: Any) -> dict[str, Any]:
    """The labelled row's record of how the served answer did against the true label: the
    version, a classifier's answer, the error (0/1, or a regressor's absolute error), the
    probability given to the true class and when it was predicted."""
    error, answer = None, None
    if served.answer is not None:
        if isinstance(label, str):
            answer = str(served.answer)
            error = 0.0 if answer == label else 1.0
        else:
            error = abs(float(served.answer) - float(label))
    proba = None
    if served.probabilities is not None and served.positions is not None:
        at = served.positions.get(str(label))
        proba = 0.0 if at is None else float(served.probabilities[at])
    return {
        "served_version": served.version,
        "served": answer,
        "error": error,
        "true_proba": proba,
        "predicted_at": served.at,
    }


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
