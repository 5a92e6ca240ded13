"""Migrations keep data: predictions logged in every earlier layout stay usable for feedback,
read in the one format the log has today."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from registry import catalog, events, labelled
from registry.db import Database
from registry.migrate import alembic_config, upgrade
from registry.models import Event, Model
from registry.predlog import reads
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


def _add_version(conn: sa.Connection, classes: list[str]) -> None:
    """Version 1 of the churn model, whose probability columns are `classes` in this order."""
    conn.execute(
        sa.text(
            "INSERT INTO artifacts (sha256, kind, size, data, created_at) "
            "VALUES (:sha, 'onnx', 0, :data, CURRENT_TIMESTAMP)"
        ),
        {"sha": "0" * 64, "data": b""},
    )
    conn.execute(
        sa.text(
            "INSERT INTO model_versions (model_id, version, stage, kind, onnx_sha256, params, "
            "metrics, data_window, classes, reason, created_at) VALUES (1, 1, 'champion', "
            "'onnx', :sha, '{}', '{}', '{}', :classes, '', CURRENT_TIMESTAMP)"
        ),
        {"sha": "0" * 64, "classes": json.dumps(classes)},
    )


def _upgraded_model(s: Session) -> tuple[Model, ModelSpec]:
    """The churn model after the upgrade, its classes set as a champion would have them."""
    model = catalog.get_model(s, "churn")
    model.classes = ["no", "yes"]
    return model, catalog.spec_of(model)


def _issued_id() -> str:
    """A prediction id as the API issued them before revision 0003: 32 random hex digits."""
    return os.urandom(16).hex()


def test_0002_moves_logged_predictions_into_batches(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade(url, "0001")
    engine = sa.create_engine(url)
    features = {"x1": 1.5, "x2": None, "x3": 0.0, "x4": 2.0, "color": "red"}
    pid = _issued_id()
    with engine.begin() as conn:
        _add_model(conn)
        conn.execute(
            sa.text(
                "INSERT INTO predictions (id, model_id, version, features, output, created_at) "
                "VALUES (:id, 1, 1, :f, :o, CURRENT_TIMESTAMP)"
            ),
            {
                "id": pid,
                "f": json.dumps(features),
                "o": json.dumps({"label": "no", "probabilities": {"no": 0.8, "yes": 0.2}}),
            },
        )
    engine.dispose()
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        model, spec = _upgraded_model(s)
        assert labelled.add_feedback(s, model, spec, [{"prediction_id": pid, "label": "yes"}]) == 1
        _, rows, labels = labelled.training_rows(s, model.id)
    assert rows == [features] and labels == ["yes"]
    db.dispose()


def test_0003_keeps_ids_issued_by_the_json_log_usable(empty_database_url: str) -> None:
    """A batch logged at revision 0002 (JSON columns, one index row per id) answers feedback by
    those ids after the upgrade to the binary log."""
    url = empty_database_url
    rows = [
        {"x1": 1.5, "x2": None, "x3": 0.0, "x4": 2.0, "color": "red"},
        {"x1": -0.5, "x2": 3.0, "x3": 1.0, "x4": None, "color": None},
    ]
    first, second, never_issued = _issued_id(), _issued_id(), _issued_id()
    upgrade(url, "0002")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _add_model(conn)
        conn.execute(
            sa.text(
                "INSERT INTO prediction_batches (id, model_id, version, rows, features, "
                "output, created_at) VALUES (:id, 1, 1, 2, :f, :o, CURRENT_TIMESTAMP)"
            ),
            {
                "id": _issued_id(),
                "f": json.dumps({k: [r[k] for r in rows] for k in rows[0]}),
                "o": json.dumps({"labels": ["no", "yes"]}),
            },
        )
        batch_id = conn.scalar(sa.text("SELECT id FROM prediction_batches"))
        for position, pid in enumerate((first, second)):
            conn.execute(
                sa.text(
                    "INSERT INTO predictions (id, model_id, batch_id, position, version, "
                    "created_at) VALUES (:id, 1, :batch, :p, 1, CURRENT_TIMESTAMP)"
                ),
                {"id": pid, "batch": batch_id, "p": position},
            )
    engine.dispose()
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        model, spec = _upgraded_model(s)
        assert reads.missing_predictions(s, model.id, [second, never_issued]) == {never_issued}
        assert labelled.add_feedback(s, model, spec, [{"prediction_id": second, "label": "no"}])
        _, features, labels = labelled.training_rows(s, model.id)
    assert features == [rows[1]] and labels == ["no"]
    db.dispose()


LOGGED_AT = datetime(2026, 11, 28, 20, tzinfo=UTC)


def _seed_json_log(conn: sa.Connection, rows: list[dict], ids: list[str | None]) -> None:
    """One batch as revision 0002 logged it (JSON features and output, probabilities in the
    served classes' order), with an index row for each given id."""
    at = sa.bindparam("at", LOGGED_AT, type_=sa.DateTime(timezone=True))
    conn.execute(
        sa.text(
            "INSERT INTO prediction_batches (id, model_id, version, rows, features, output, "
            "created_at) VALUES (:id, 1, 1, :n, :f, :o, :at)"
        ).bindparams(at),
        {
            "id": (batch_id := _issued_id()),
            "n": len(rows),
            "f": json.dumps({k: [r[k] for r in rows] for k in rows[0]}),
            "o": json.dumps(
                {
                    "labels": ["yes"] * len(rows),
                    "probabilities": [[0.75, 0.25]] * len(rows),
                    "classes": ["yes", "no"],
                }
            ),
        },
    )
    for position, pid in enumerate(ids):
        if pid is not None:
            conn.execute(
                sa.text(
                    "INSERT INTO predictions (id, model_id, batch_id, position, version, "
                    "created_at) VALUES (:id, 1, :batch, :p, 1, :at)"
                ).bindparams(at),
                {"id": pid, "batch": batch_id, "p": position},
            )


def test_0005_converts_the_json_log_and_keeps_its_ids(empty_database_url: str) -> None:
    """Rows logged as JSON before revision 0003 are read in today's binary form after 0005, by
    the ids issued for them, with what was served; a downgrade gives those ids their index rows
    back, and upgrading again converts nothing twice."""
    url = empty_database_url
    rows = [
        {"x1": 0.1, "x2": None, "x3": -2.5, "x4": 1e-7, "color": "red"},
        {"x1": 3.0, "x2": 1.0, "x3": 0.0, "x4": -1.0, "color": None},
        {"x1": 9.0, "x2": 9.0, "x3": 9.0, "x4": 9.0, "color": "blue"},
    ]
    first, second = _issued_id(), "0" * 24 + "ffffffff"  # the largest position there is
    upgrade(url, "0004")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _add_model(conn)
        _add_version(conn, ["no", "yes"])
        _seed_json_log(conn, rows, [first, second, None])  # no id names the last row
    engine.dispose()

    upgrade(url)
    db = Database(url)
    with db.session() as s:
        model, spec = _upgraded_model(s)
        never_issued = first[:24] + "00000000"
        assert reads.missing_predictions(s, model.id, [first, second, never_issued]) == {
            never_issued
        }
        found = reads.logged_predictions(s, model.id, spec, [first, second])
        assert [found[first].features, found[second].features] == rows[:2]
        assert (found[first].version, found[first].answer) == (1, "yes")
        assert found[first].at == LOGGED_AT
        assert found[first].positions == {"no": 0, "yes": 1}
        np.testing.assert_array_equal(found[first].probabilities, [0.25, 0.75])
        recent = reads.recent_features(s, model.id, spec, rows=10)
        assert sorted(recent["x1"]) == [float(np.float32(0.1)), 3.0, 9.0]  # the unnamed row too
        labelled.add_feedback(s, model, spec, [{"prediction_id": first, "label": "no"}])
        _, features, labels = labelled.training_rows(s, model.id)
    assert features == [rows[0]] and labels == ["no"]
    db.dispose()

    command.downgrade(alembic_config(url), "0004")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        index = conn.execute(sa.text("SELECT id, batch_id, position FROM predictions")).all()
        assert sorted(index) == sorted([(first, first, 0), (second, second, 0)])
    engine.dispose()
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        found = reads.logged_predictions(s, 1, churn_spec(), [first, second])
        assert [found[first].features, found[second].features] == rows[:2]
        assert s.scalar(sa.text("SELECT count(*) FROM prediction_batches")) == 3
    db.dispose()


def test_0006_names_the_model_of_every_entry_and_keeps_them_when_it_goes(
    empty_database_url: str,
) -> None:
    """Entries written before 0006 learn their model's name; deleting the model then keeps
    them, still naming it, with the reference cleared; a downgrade keeps them too."""
    url = empty_database_url
    upgrade(url, "0005")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _add_model(conn)
        conn.execute(
            sa.text(
                "INSERT INTO events (model_id, kind, actor, reason, detail, created_at) "
                "VALUES (1, 'model_created', 'admin', '', '{}', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()

    upgrade(url)
    db = Database(url)
    with db.session() as s:
        assert [(e["model"], e["kind"]) for e in events.list_events(s, "churn")] == [
            ("churn", "model_created")
        ]
        s.execute(sa.delete(Model).where(Model.id == 1))
    with db.session() as s:
        kept = s.execute(sa.select(Event.model_id, Event.model_name, Event.kind)).all()
        assert kept == [(None, "churn", "model_created")]
        assert [e["model"] for e in events.list_events(s, "churn")] == ["churn"]
    db.dispose()

    command.downgrade(alembic_config(url), "0005")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT model_id, kind FROM events")).all()
        assert rows == [(None, "model_created")]
    engine.dispose()
    upgrade(url)
