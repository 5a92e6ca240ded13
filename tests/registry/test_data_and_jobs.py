"""Feedback is all or nothing and never counts twice; jobs are single-flight and re-queued
when their worker stops heart-beating."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import update
from sqlalchemy.exc import StatementError

from registry import catalog, jobs, labelled
from registry.errors import InvalidData
from registry.models import Job, JobStatus, Trigger, utcnow
from registry.predlog.ids import prediction_ids
from registry.predlog.write import log_predictions
from tests.factories import churn_rows, churn_spec, features_only, logged_batch


def _model_with_rows(s, n: int = 10):  # type: ignore[no-untyped-def]
    spec = churn_spec()
    model = catalog.create_model(s, spec, actor="test")
    labelled.add_rows(s, model, spec, churn_rows(n, seed=1))
    return model, spec


def _log(s, model, spec, rows: list[dict]) -> list[str]:  # type: ignore[no-untyped-def]
    """Log these feature rows as one batch; their prediction ids."""
    batch = logged_batch(model.id, spec, rows, probabilities=np.full((len(rows), 2), 0.5))
    log_predictions(s, [batch])
    return prediction_ids(batch.id, len(rows))


def _logged(s, model, spec, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    return _log(s, model, spec, features_only(churn_rows(n, seed=2)))


def test_upload_learns_classes_and_rejects_bad_rows_whole(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, spec = _model_with_rows(s)
        assert model.classes == ["no", "yes"]
    bad = churn_rows(3, seed=3)
    bad[1]["x1"] = "high"
    del bad[2]["color"]
    with pytest.raises(InvalidData) as info, db.session() as s:
        model = catalog.get_model(s, "churn")
        labelled.add_rows(s, model, spec, bad)
    fields = {(p["row"], p["field"]) for p in info.value.problems}
    assert fields == {(1, "rows[1].x1"), (2, "rows[2].color")}
    with db.session() as s:
        assert labelled.rows_after(s, catalog.get_model(s, "churn").id, None) == 10


def test_feedback_is_all_or_nothing_and_lists_offenders(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, spec = _model_with_rows(s)
        p1, p2 = _logged(s, model, spec, 2)
    labels = [
        {"prediction_id": p1, "label": "yes"},
        {"prediction_id": p2[:24] + "00000002", "label": "no"},  # past the batch's end
        {"prediction_id": p2, "label": "maybe"},
    ]
    with pytest.raises(InvalidData) as info, db.session() as s:
        labelled.add_feedback(s, catalog.get_model(s, "churn"), spec, labels)
    assert [(p["row"], p["field"]) for p in info.value.problems] == [
        (1, "labels[1].prediction_id"),
        (2, "labels[2].label"),
    ]
    assert "unknown class 'maybe'" in info.value.problems[1]["message"]
    with db.session() as s:
        assert labelled.rows_after(s, catalog.get_model(s, "churn").id, None) == 10


def test_the_same_prediction_labelled_twice_counts_once(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, spec = _model_with_rows(s)
        (p1,) = _logged(s, model, spec, 1)
    for label in ("yes", "no"):
        with db.session() as s:
            labelled.add_feedback(
                s, catalog.get_model(s, "churn"), spec, [{"prediction_id": p1, "label": label}]
            )
    with db.session() as s:
        ids, _, labels = labelled.training_rows(s, catalog.get_model(s, "churn").id)
        assert len(ids) == 11 and labels[-1] == "no"


def test_feedback_trains_on_the_logged_features(db) -> None:  # type: ignore[no-untyped-def]
    """A labelled prediction becomes a training row with the values the client sent: decimals
    come back as written (the log keeps float32), missing values as None."""
    sent = [
        {"x1": 0.1, "x2": -3.25, "x3": None, "x4": 12345.678, "color": "red"},
        {"x1": 1e-7, "x2": 2, "x3": 0.3, "x4": -0.0, "color": None},
    ]
    with db.session() as s:
        model, spec = _model_with_rows(s)
        ids = _log(s, model, spec, sent)
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        labelled.add_feedback(s, model, spec, [{"prediction_id": p, "label": "yes"} for p in ids])
    with db.session() as s:
        _, features, labels = labelled.training_rows(s, catalog.get_model(s, "churn").id)
    assert features[-2:] == sent and labels[-2:] == ["yes", "yes"]


def test_retrain_is_single_flight(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, _ = _model_with_rows(s)
        first, created = jobs.submit(s, model, trigger="admin", actor="a")
        again, created_again = jobs.submit(s, model, trigger="admin", actor="b")
        assert created and not created_again and again.id == first.id


def test_job_fields_are_enums_and_refuse_unknown_values(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, _ = _model_with_rows(s)
        job, _ = jobs.submit(s, model, trigger=Trigger.LABELS, actor="a")
        job_id = job.id
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job.trigger is Trigger.LABELS and job.status is JobStatus.QUEUED
        job.status = "finished"  # type: ignore[assignment]  # not a JobStatus on purpose
        with pytest.raises(StatementError, match="not among the defined enum values"):
            s.flush()
        s.rollback()


def test_a_silent_worker_loses_its_job(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, _ = _model_with_rows(s)
        job, _ = jobs.submit(s, model, trigger="admin", actor="a")
        assert jobs.start(s, job.id, worker="w1") is not None
        assert jobs.start(s, job.id, worker="w2") is None  # already owned
    with db.session() as s:
        s.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(seconds=30)))
        assert jobs.requeue_stale(s, timeout=10, max_attempts=3) == [job.id]
    with db.session() as s:
        assert not jobs.heartbeat(s, job.id, attempt=1, progress=0.5)  # attempt 1 must stop
        assert jobs.start(s, job.id, worker="w2") is not None
        assert jobs.get(s, job.id).attempts == 2
    time.sleep(0.01)
    with db.session() as s:
        assert jobs.requeue_stale(s, timeout=0.001, max_attempts=2) == []
        assert jobs.get(s, job.id).status == "failed"


def test_a_lost_message_is_resent_once_a_period(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model, _ = _model_with_rows(s)
        job, _ = jobs.submit(s, model, trigger="admin", actor="a")
        jobs.mark_sent(s, [job.id])
        assert jobs.resend_due(s, older_than=60) == []
        s.execute(update(Job).values(sent_at=utcnow() - timedelta(seconds=120)))
        assert jobs.resend_due(s, older_than=60) == [job.id]
        assert jobs.resend_due(s, older_than=60) == []  # not again until the period passed
