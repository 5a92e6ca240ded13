"""Migrations keep data: predictions logged in the 0001 layout stay usable for feedback."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.orm import Session

from registry import catalog, data
from registry.db import Database
from registry.migrate import upgrade
from registry.models import Model
from tests.factories import churn_spec
from tuning.spec import ModelSpec


def _add_model(conn: sa.Connection) -> None:
    """The churn model as an older revision stores it: id 1, no classes yet."""
    conn.execute(
        sa.text(
            "INSERT INTO models (id, name, spec, created_at) VALUES "
            "(1, 'churn', :spec, CURRENT_TIMESTAMP)"
        ),
        {"spec": churn_spec().model_dump_json()},
    )


def _upgraded_model(s: Session) -> tuple[Model, ModelSpec]:
    """The churn model after the upgrade, its classes set as a champion would have them."""
    model = catalog.get_model(s, "churn")
    model.classes = ["no", "yes"]
    return model, catalog.spec_of(model)


def test_0002_moves_logged_predictions_into_batches(tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    for url in (f"sqlite:///{tmp_path / 'old.db'}", request.getfixturevalue("postgres_url")):
        upgrade(url, "0001")
        engine = sa.create_engine(url)
        features = {"x1": 1.5, "x2": None, "x3": 0.0, "x4": 2.0, "color": "red"}
        with engine.begin() as conn:
            _add_model(conn)
            conn.execute(
                sa.text(
                    "INSERT INTO predictions (id, model_id, version, features, output, created_at) "
                    "VALUES ('p1', 1, 1, :f, :o, CURRENT_TIMESTAMP)"
                ),
                {
                    "f": json.dumps(features),
                    "o": json.dumps({"label": "no", "probabilities": {"no": 0.8, "yes": 0.2}}),
                },
            )
        engine.dispose()
        upgrade(url)
        db = Database(url)
        with db.session() as s:
            model, spec = _upgraded_model(s)
            assert data.add_feedback(s, model, spec, [{"prediction_id": "p1", "label": "yes"}]) == 1
            _, rows, labels = data.training_rows(s, model.id)
        assert rows == [features] and labels == ["yes"]
        db.dispose()


def test_0003_keeps_ids_issued_by_the_json_log_usable(tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    """A batch logged at revision 0002 (JSON columns, one index row per id) answers feedback by
    those ids after the upgrade to the binary log."""
    rows = [
        {"x1": 1.5, "x2": None, "x3": 0.0, "x4": 2.0, "color": "red"},
        {"x1": -0.5, "x2": 3.0, "x3": 1.0, "x4": None, "color": None},
    ]
    for url in (f"sqlite:///{tmp_path / 'old.db'}", request.getfixturevalue("postgres_url")):
        upgrade(url, "0002")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            _add_model(conn)
            conn.execute(
                sa.text(
                    "INSERT INTO prediction_batches (id, model_id, version, rows, features, "
                    "output, created_at) VALUES ('b1', 1, 1, 2, :f, :o, CURRENT_TIMESTAMP)"
                ),
                {
                    "f": json.dumps({k: [r[k] for r in rows] for k in rows[0]}),
                    "o": json.dumps({"labels": ["no", "yes"]}),
                },
            )
            for position, pid in enumerate(("first-id", "second-id")):
                conn.execute(
                    sa.text(
                        "INSERT INTO predictions (id, model_id, batch_id, position, version, "
                        "created_at) VALUES (:id, 1, 'b1', :p, 1, CURRENT_TIMESTAMP)"
                    ),
                    {"id": pid, "p": position},
                )
        engine.dispose()
        upgrade(url)
        db = Database(url)
        with db.session() as s:
            model, spec = _upgraded_model(s)
            assert data.missing_predictions(s, model.id, ["second-id", "third-id"]) == {"third-id"}
            assert data.add_feedback(
                s, model, spec, [{"prediction_id": "second-id", "label": "no"}]
            )
            _, features, labels = data.training_rows(s, model.id)
        assert features == [rows[1]] and labels == ["no"]
        db.dispose()
