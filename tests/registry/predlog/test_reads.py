"""Reading the prediction log back, on SQLite and PostgreSQL: an id finds its own row and no
other, with the features the model saw and what it answered; drift reads the newest rows."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from registry import catalog
from registry.catalog import NewVersion
from registry.models import Model, PredictionBatch
from registry.predlog.ids import prediction_ids
from registry.predlog.reads import logged_predictions, missing_predictions, recent_features
from registry.predlog.write import log_predictions
from tests.factories import churn_spec, logged_batch

ROWS = [
    {"x1": 0.1, "x2": None, "x3": -2.5, "x4": 12345.678, "color": "red"},
    {"x1": 1e-7, "x2": 2.0, "x3": 0.3, "x4": -0.0, "color": None},
]


def _model(s: Session, name: str = "churn") -> Model:
    """A classifier whose version 1 answers probabilities of ["no", "yes"] in that order."""
    model = catalog.create_model(s, churn_spec(name), actor="test")
    new = NewVersion("onnx", name.encode(), None, {}, {}, {}, ["no", "yes"], None, "", None)
    catalog.register_version(s, model, new, stage="champion")
    return model


def test_an_id_finds_its_own_row_and_no_other(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, other = _model(s), _model(s, "other")
        batch = logged_batch(model.id, churn_spec(), ROWS)
        log_predictions(s, [batch])
    ids = prediction_ids(batch.id, 2)
    past_the_end = prediction_ids(batch.id, 1, 2)[0]
    with db.session() as s:
        assert missing_predictions(s, model.id, [*ids, past_the_end]) == {past_the_end}
        assert missing_predictions(s, other.id, ids) == set(ids)  # another model's
        assert logged_predictions(s, other.id, churn_spec(), ids) == {}


def test_a_logged_prediction_reads_back_as_it_was_served(db) -> None:  # type: ignore[no-untyped-def]
    """Numbers come back as the client most likely wrote them (the log keeps float32), a
    missing value as None, with the version's answer and probabilities."""
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    with db.session() as s:
        model = _model(s)
        batch = logged_batch(
            model.id, churn_spec(), ROWS, labels=["yes", "no"], probabilities=probabilities
        )
        log_predictions(s, [batch])
    first, second = prediction_ids(batch.id, 2)
    with db.session() as s:
        found = logged_predictions(s, model.id, churn_spec(), [second, first])
    assert [found[first].features, found[second].features] == ROWS
    assert [found[first].answer, found[second].answer] == ["yes", "no"]
    assert found[second].version == 1 and found[second].at == batch.created_at
    assert found[second].positions == {"no": 0, "yes": 1}
    np.testing.assert_array_equal(found[second].probabilities, np.float32([0.6, 0.4]))


def test_a_batch_may_start_past_position_zero(db) -> None:  # type: ignore[no-untyped-def]
    """As the batches that keep ids issued before the present log do."""
    with db.session() as s:
        model = _model(s)
        s.add(
            PredictionBatch(
                id="b" * 24,
                model_id=model.id,
                version=1,
                rows=1,
                first_position=0xFFFFFFFF,
                numeric=np.float32([[1, 2, 3, 4]]).tobytes(),
                categorical={"color": ["green"]},
                labels=["no"],
            )
        )
    kept, before = "b" * 24 + "ffffffff", "b" * 24 + "fffffffe"
    with db.session() as s:
        assert missing_predictions(s, model.id, [kept, before]) == {before}
        found = logged_predictions(s, model.id, churn_spec(), [kept])
    assert found[kept].features == {"x1": 1.0, "x2": 2.0, "x3": 3.0, "x4": 4.0, "color": "green"}
    assert found[kept].probabilities is None


def test_drift_reads_whole_newest_batches_oldest_first(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model = _model(s)
        batches = [
            logged_batch(model.id, churn_spec(), [{**ROWS[0], "x1": float(i)}] * 2)
            for i in range(3)
        ]
        log_predictions(s, batches)
    with db.session() as s:
        recent = recent_features(s, model.id, churn_spec(), rows=3)
    assert recent["x1"] == [1.0, 1.0, 2.0, 2.0]
    assert np.isnan(recent["x2"]).all() and recent["color"] == ["red"] * 4
