"""The monitor on a real database: served predictions, labelled through the feedback path,
are replayed through the detector; a change is recorded once and a reaction retrain follows."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from registry import catalog, jobs, labelled
from registry.models import Event, Job, LabelledRow, utcnow
from registry.notify import ChampionNotifier
from registry.predlog.ids import prediction_ids
from registry.predlog.write import log_predictions
from tests.factories import churn_rows, churn_spec, features_only, logged_batch
from worker.monitor import watch
from worker.settings import WorkerSettings
from worker.training import Skipped, claim, run_local
from worker.triggers import tick


def _champion(db, **overrides) -> int:  # type: ignore[no-untyped-def]
    """The churn model with a first version promoted from 400 uploaded rows."""
    spec = churn_spec(**overrides)
    with db.session() as s:
        model = catalog.create_model(s, spec, actor="test")
        labelled.add_rows(s, model, spec, churn_rows(400, seed=1))
        job, _ = jobs.submit(s, model, trigger="admin", actor="test")
        job_id, model_id = job.id, model.id
    job = claim(db, job_id, worker="w")
    assert not isinstance(job, Skipped)
    run_local(db, job, heartbeat_seconds=0.5, notifier=ChampionNotifier(None))
    with db.session() as s:
        assert catalog.champion(s, model_id) is not None
    return model_id


def _serve(db, model_id: int, n: int, *, error_rate: float, seed: int, version=None) -> None:  # type: ignore[no-untyped-def]
    """Log n predictions of the champion (or of `version`) that are wrong at `error_rate`,
    then label them."""
    rows = churn_rows(n, seed=seed)
    rng = np.random.default_rng(seed)
    truth = [r["churned"] for r in rows]
    flip = {"yes": "no", "no": "yes"}
    served = [flip[t] if rng.random() < error_rate else t for t in truth]
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        version = version or catalog.champion(s, model_id).version
        spec = catalog.spec_of(model)
        batch = logged_batch(model_id, spec, features_only(rows), version=version, labels=served)
        log_predictions(s, [batch])
    ids = prediction_ids(batch.id, n)
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        labels = [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
        labelled.add_feedback(s, model, catalog.spec_of(model), labels)


def _events(db, kind: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return list(s.scalars(select(Event).where(Event.kind == kind)))


def test_feedback_keeps_what_was_served_and_its_error(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _champion(db)
    _serve(db, model_id, 200, error_rate=0.25, seed=5)
    with db.session() as s:
        served = s.execute(
            select(LabelledRow.served_version, LabelledRow.served, LabelledRow.label,
                   LabelledRow.error, LabelledRow.predicted_at)
            .where(LabelledRow.prediction_id.is_not(None))
        ).all()  # fmt: skip
    assert len(served) == 200
    assert {version for version, *_ in served} == {1}
    assert all(err == float(ans != label) for _, ans, label, err, _ in served)
    assert 0.15 < np.mean([err for *_, err, _ in served]) < 0.35
    assert all(at is not None for *_, at in served)


def test_stationary_errors_raise_no_alarm_and_no_retrain(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _champion(db)
    for seed in range(6):
        _serve(db, model_id, 300, error_rate=0.1, seed=10 + seed)
        result = watch(db)
        assert result.detected.get("churn", []) == [] and result.send == []
    assert _events(db, "change_detected") == []
    with db.session() as s:
        assert catalog.get_model(s, "churn").change is None


def test_a_rise_of_the_error_is_recorded_once_and_a_reaction_retrain_follows(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _champion(db)
    _serve(db, model_id, 600, error_rate=0.05, seed=20)
    with db.session() as s:
        first_new = s.scalar(select(LabelledRow.id).order_by(LabelledRow.id.desc()).limit(1)) + 1
        # an open label-count job still working on the old regime
        open_job, _ = jobs.submit(s, catalog.get_model(s, "churn"), trigger="labels", actor="t")
        open_id = open_job.id
    _serve(db, model_id, 400, error_rate=0.5, seed=21)
    result = watch(db)
    assert "change" in result.detected["churn"]
    with db.session() as s:
        change = catalog.get_model(s, "churn").change
        assert abs(change["start_row_id"] - first_new) <= 60
        assert change["before"] < 0.1 < 0.35 < change["after"]
        assert change["detector"] == "ADWIN" and change["version"] == 1
        # the reaction: the label job is superseded, a fast retrain on the new rows is queued
        assert jobs.get(s, open_id).status == "failed"
        reaction = jobs.open_job(s, model_id)
        assert reaction.trigger == "change" and reaction.options["reaction"] is True
        assert reaction.options["since_row_id"] == change["start_row_id"]
        assert result.send == [reaction.id]
    (event,) = _events(db, "change_detected")
    assert event.detail["start_row_id"] == change["start_row_id"] and "rose" in event.reason
    assert len(_events(db, "retrain_superseded")) == 1
    again = watch(db)  # the same change is not found twice, nor reacted to twice
    assert again.detected.get("churn", []) == [] and again.send == []
    assert len(_events(db, "change_detected")) == 1


def test_the_reaction_retrain_trains_and_is_judged_after_the_change(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _champion(db)
    _serve(db, model_id, 600, error_rate=0.05, seed=30)
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        labelled.add_rows(s, model, catalog.spec_of(model), churn_rows(300, seed=31, flipped=True))
        start = s.scalar(select(LabelledRow.id).order_by(LabelledRow.id.desc())) - 299
        model.change = {"version": 1, "start_row_id": start, "detected_row_id": start + 40}
        job, _ = jobs.submit(
            s, model, trigger="change", actor="t", options={"reaction": True, "since_row_id": start}
        )
        job_id = job.id
    job = claim(db, job_id, worker="w")
    assert not isinstance(job, Skipped) and job.spec.retrain.max_candidates == 5
    assert job.spec.retrain.windows == [None]  # every row since the change
    assert job.data.change_start is not None and job.ids[job.data.change_start] == start
    run_local(db, job, heartbeat_seconds=0.5, notifier=ChampionNotifier(None))
    with db.session() as s:
        done = s.get(Job, job_id)
        assert done.status == "succeeded", done.error
        result = done.result
        version = catalog.get_version(s, catalog.get_model(s, "churn"), 2)
    window = version.data_window
    assert window["first_row_id"] == start == window["since_change_row_id"]
    assert window["window"] is None
    assert result["decision"] == "promoted", result["reason"]  # the flipped concept is learned
    # judged on rows after the change it had not seen, then trained with them too
    assert window["holdout"]["first_row_id"] > start and window["with_holdout"]
    assert window["last_row_id"] == window["holdout"]["last_row_id"]


def test_a_young_regime_is_followed_by_reaction_retrains_not_the_label_trigger(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _champion(db, retrain={"min_new_labels": 100})
    _serve(db, model_id, 600, error_rate=0.05, seed=40)
    _serve(db, model_id, 300, error_rate=0.5, seed=41)
    first = watch(db).send
    assert len(first) == 1
    with db.session() as s:  # the first reaction ran (its outcome does not matter here)
        job = jobs.get(s, first[0])
        job.status, job.finished_at = "succeeded", utcnow()
        job.last_row_id = s.scalar(select(LabelledRow.id).order_by(LabelledRow.id.desc()))
    assert watch(db).send == []  # too few labels since that job
    _serve(db, model_id, 200, error_rate=0.5, seed=42)
    with db.session() as s:
        spec = catalog.spec_of(catalog.get_model(s, "churn"))
    settings = WorkerSettings(home=".")
    assert tick(db, settings).created == {}  # the label-count trigger waits in a young regime
    assert spec.retrain.min_new_labels == 100
    follow = watch(db).send
    assert len(follow) == 1
    with db.session() as s:
        job = jobs.get(s, follow[0])
        assert job.trigger == "change" and job.options["reaction"] is True
        assert catalog.get_model(s, "churn").change["reactions"] == 2
    assert spec.retrain.reaction_rows <= 200


def test_a_change_is_found_even_when_a_promotion_came_just_before_it(db) -> None:  # type: ignore[no-untyped-def]
    """The detector follows what was served, not one version: a challenger promoted on the
    eve of a change starts with a high error and would otherwise hide the rise."""
    model_id = _champion(db)
    _serve(db, model_id, 600, error_rate=0.05, seed=50)
    _serve(db, model_id, 50, error_rate=0.05, seed=51, version=2)
    _serve(db, model_id, 400, error_rate=0.5, seed=52, version=2)
    assert "change" in watch(db).detected["churn"]
    with db.session() as s:
        assert catalog.get_model(s, "churn").change["after"] > 0.35
