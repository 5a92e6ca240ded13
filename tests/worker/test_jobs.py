"""The worker's logic called directly on a real database (the Celery task only wraps it)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from registry import catalog, jobs, labelled
from registry.catalog import NewVersion
from registry.models import Artifact, Job, Model, Stage, utcnow
from registry.notify import ChampionNotifier
from tests.factories import churn_rows, churn_spec
from worker import fanout, training
from worker.settings import WorkerSettings
from worker.training import Heartbeat, JobLost, Skipped, claim, run_local
from worker.triggers import tick


def _model(db, n: int, **spec):  # type: ignore[no-untyped-def]
    spec_ = churn_spec(**spec)
    with db.session() as s:
        model = catalog.create_model(s, spec_, actor="test")
        if n:
            labelled.add_rows(s, model, spec_, churn_rows(n, seed=1))
        return model.id


def _run(db, job_id: str) -> None:  # type: ignore[no-untyped-def]
    job = claim(db, job_id, worker="w")
    if not isinstance(job, Skipped):  # a job too small to split fails at claim
        run_local(db, job, heartbeat_seconds=0.2, notifier=ChampionNotifier(None))


def _submit(db) -> str:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return jobs.submit(s, catalog.get_model(s, "churn"), trigger="admin", actor="t")[0].id


def test_a_first_retrain_registers_and_promotes(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _model(db, 400)
    job_id = _submit(db)
    _run(db, job_id)
    with db.session() as s:
        job = jobs.get(s, job_id)
        assert job.status == "succeeded" and job.progress == 1.0
        assert job.result["decision"] == "promoted" and job.result["candidate_version"] == 1
        champ = catalog.champion(s, model_id)
        window = champ.data_window
        # judged on the newest rows, then trained with them: all 400 rows
        assert window["rows"] == 400 and window["with_holdout"]
        assert window["last_row_id"] == window["holdout"]["last_row_id"]
        assert window["holdout"]["first_row_id"] > window["first_row_id"]
        assert champ.job_id == job_id and champ.pipeline_sha256


def test_a_failed_training_records_its_error_and_no_version(db) -> None:  # type: ignore[no-untyped-def]
    model_id = _model(db, 12)
    job_id = _submit(db)
    _run(db, job_id)
    with db.session() as s:
        job = jobs.get(s, job_id)
        assert job.status == "failed" and "too few" in job.error
        assert catalog.versions(s, model_id) == []


def test_a_worker_that_lost_its_job_registers_nothing(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model_id = _model(db, 400)
    job_id = _submit(db)
    real = training.conclude

    def conclude_then_lose(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = real(*args, **kwargs)
        with db.session() as s:  # meanwhile the platform re-queued the job for another worker
            s.execute(update(Job).where(Job.id == job_id).values(status="queued", worker=None))
        return outcome

    monkeypatch.setattr(training, "conclude", conclude_then_lose)
    _run(db, job_id)
    with db.session() as s:
        assert jobs.get(s, job_id).status == "queued"
        assert catalog.versions(s, model_id) == []


@pytest.mark.parametrize(
    ("retrain", "rows", "age", "expected"),
    [
        ({"min_new_labels": 100}, 150, 0, "labels"),
        ({"min_new_labels": 200}, 150, 0, None),
        ({"min_new_labels": None, "schedule_seconds": 60}, 10, 30, None),
        ({"min_new_labels": None, "schedule_seconds": 60}, 10, 90, "schedule"),
    ],
)
def test_tick_triggers_by_labels_and_schedule(db, retrain, rows, age, expected) -> None:  # type: ignore[no-untyped-def]
    _model(db, rows, retrain=retrain)
    with db.session() as s:
        s.execute(update(Model).values(created_at=utcnow() - timedelta(seconds=age)))
    result = tick(db, WorkerSettings())
    assert result.created == ({"churn": expected} if expected else {})
    assert len(result.send) == (1 if expected else 0)
    assert tick(db, WorkerSettings()).created == {}  # the open job is not duplicated


def test_claim_says_why_it_has_nothing_to_do(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _model(db, 50)
    job_id = _submit(db)

    def broken(*_: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(training, "load", broken)
    skipped = claim(db, job_id, worker="w")
    assert isinstance(skipped, Skipped) and "could not load its data: OSError: disk gone" in (
        skipped.reason
    )
    with db.session() as s:
        job = jobs.get(s, job_id)
        assert job.status == "failed" and job.error == "OSError: disk gone"
        assert job.last_row_id is not None  # the rows it was to train on were fixed at claim
    again = claim(db, job_id, worker="w")
    assert isinstance(again, Skipped) and again.reason.startswith("not queued")


def test_one_models_broken_spec_does_not_stop_the_others_triggers(db) -> None:  # type: ignore[no-untyped-def]
    """A spec stored before today's bounds (schedule_seconds 1e300 overflowed the tick):
    that model's triggers fail, visibly; the other model's and the re-queue still run."""
    broken = _model(db, 150, name="broken", retrain={"min_new_labels": 100})
    _model(db, 150, retrain={"min_new_labels": 100})
    stale = _submit(db)  # churn's job, whose worker then goes silent
    with db.session() as s:
        jobs.start(s, stale, worker="dead")
        s.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(seconds=600)))
        model = s.get(Model, broken)
        model.spec = {**model.spec, "retrain": {**model.spec["retrain"], "schedule_seconds": 1e300}}
    result = tick(db, WorkerSettings())
    assert result.send == [stale]  # re-queued and re-sent; churn's open job is not duplicated
    assert "broken" in result.failed and "schedule_seconds" in result.failed["broken"]
    with db.session() as s:
        model = s.get(Model, broken)
        model.spec = {**model.spec, "retrain": {"min_new_labels": 100}}
    assert tick(db, WorkerSettings()).created == {"broken": "labels"}


def test_tick_requeues_a_silent_job_and_resends_it(db) -> None:  # type: ignore[no-untyped-def]
    _model(db, 50)
    job_id = _submit(db)
    with db.session() as s:
        jobs.start(s, job_id, worker="dead")
        s.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(seconds=600)))
    assert tick(db, WorkerSettings()).send == [job_id]
    with db.session() as s:
        assert jobs.get(s, job_id).status == "queued"


def test_a_challenger_failing_parity_is_not_registered(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tuning import challenge
    from tuning.export import ParityReport

    model_id = _model(db, 400)
    job_id = _submit(db)
    broken = ParityReport(False, 80, 0.9, 0.3, "labels differ on 8 of 80 rows")
    monkeypatch.setattr(challenge, "check_parity", lambda *a, **k: broken)
    _run(db, job_id)
    with db.session() as s:
        job = jobs.get(s, job_id)
        assert job.status == "succeeded" and job.result["decision"] == "rejected"
        assert job.result["candidate_version"] is None
        assert "parity failed (labels differ on 8 of 80 rows)" in job.result["reason"]
        assert catalog.versions(s, model_id) == []


def test_progress_reported_between_beats_is_written_when_the_task_ends(db) -> None:  # type: ignore[no-untyped-def]
    """A fanned-out search reports its progress from the rung task, which ends long before
    the next beat of a slow heartbeat: the progress must still reach the job row."""
    _model(db, 50)
    job_id = _submit(db)
    with db.session() as s:
        attempt = jobs.start(s, job_id, worker="w").attempts
    with Heartbeat(db, job_id, attempt, period=60) as beat:
        beat.progress(0.3)
    with db.session() as s:
        assert jobs.get(s, job_id).progress == 0.3


def _break_champion(db, model_id: int, how: str) -> str:  # type: ignore[no-untyped-def]
    """Make the champion's artifacts unusable as `how` says; the sha256 of the broken one."""
    with db.session() as s:
        champion = catalog.champion(s, model_id)
        if how == "not onnx":  # bytes that hash right but are no graph, promoted
            model = s.get(Model, model_id)
            new = NewVersion("refit", b"not an ONNX graph", None, {}, {}, {}, None, None, "t", None)
            row = catalog.register_version(s, model, new, stage=Stage.CHALLENGER)
            catalog.promote(s, model, row, actor="test", reason="t")
            return row.onnx_sha256
        digest = champion.onnx_sha256 if how == "onnx truncated" else champion.pipeline_sha256
        artifact = s.get(Artifact, digest)
        artifact.data = bytes(artifact.data)[: artifact.size // 2]
        return digest


@pytest.mark.parametrize(
    ("how", "reference"),
    [("onnx truncated", "baseline"), ("not onnx", "baseline"), ("pipeline truncated", "champion")],
)
def test_a_retrain_goes_on_without_what_of_the_champion_will_not_load(db, how, reference) -> None:  # type: ignore[no-untyped-def]
    """An unloadable ONNX graph is a champion no replica can serve: the retrain judges its
    challenger against the baseline, as a first one does; an unloadable pipeline only costs
    the warm start. Either way the job finishes at once and its result names the artifact."""
    model_id = _model(db, 400)
    _run(db, _submit(db))
    digest = _break_champion(db, model_id, how)
    with db.session() as s:
        broken = catalog.champion(s, model_id).version
        model = catalog.get_model(s, "churn")  # rows new to the champion, trained on all 400
        labelled.add_rows(s, model, catalog.spec_of(model), churn_rows(200, seed=2))
    job_id = _submit(db)
    _run(db, job_id)
    with db.session() as s:
        job = jobs.get(s, job_id)
        assert job.status == "succeeded", job.error
        result = job.result
        assert result["metrics"]["reference"] == reference
        problem = result["champion_problem"]
        assert f"champion v{broken}" in problem and digest in problem, problem
        assert problem in result["reason"]
        assert result["candidate"]["kind"] != "warm_start"
        current = catalog.champion(s, model_id).version
        assert result["champion_version"] == current
        assert current == (
            result["candidate_version"] if result["decision"] == "promoted" else broken
        )


def _delete_model(db, model_id: int) -> None:  # type: ignore[no-untyped-def]
    """What deleting a model does to its jobs: their rows go with it."""
    with db.session() as s:
        s.execute(delete(Model).where(Model.id == model_id))


def test_a_job_deleted_with_its_model_ends_its_work_cleanly(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The model goes while its job trains: the worker registers nothing, raises nothing and
    records nothing; the job's message, delivered again, finds nothing to do."""
    other = _model(db, 400, name="other")
    model_id = _model(db, 400)
    job_id = _submit(db)
    real = training.conclude

    def conclude_then_delete(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = real(*args, **kwargs)
        _delete_model(db, model_id)
        return outcome

    monkeypatch.setattr(training, "conclude", conclude_then_delete)
    _run(db, job_id)
    with db.session() as s:
        assert s.get(Job, job_id) is None and s.get(Model, model_id) is None
        assert catalog.versions(s, other) == [] and s.get(Model, other) is not None
    again = claim(db, job_id, worker="w")
    assert isinstance(again, Skipped) and again.reason.startswith("not queued")


def test_a_heartbeat_finds_its_deleted_job_over(db) -> None:  # type: ignore[no-untyped-def]
    """A search in progress learns at its next beat that its job was deleted, and stops."""
    model_id = _model(db, 50)
    job_id = _submit(db)
    with db.session() as s:
        attempt = jobs.start(s, job_id, worker="w").attempts
    with pytest.raises(JobLost), Heartbeat(db, job_id, attempt, period=0.05) as beat:
        _delete_model(db, model_id)
        deadline = time.monotonic() + 5
        while not beat.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        beat.progress(0.5)


def test_a_candidate_fit_of_a_deleted_job_finds_it_over(db) -> None:  # type: ignore[no-untyped-def]
    """A fanned-out search loads the job's data in every task: a task that starts after the
    job was deleted finds its attempt over (the chord's rung then drops the search)."""
    model_id = _model(db, 400)
    job_id = _submit(db)
    job = claim(db, job_id, worker="w")
    assert not isinstance(job, Skipped)
    _delete_model(db, model_id)
    with pytest.raises(JobLost):
        training.load(db, job_id, job.attempt)
    cache = fanout.JobDataCache(db)
    assert fanout.fit(cache, job_id, job.attempt, {}, {}, worker="w2") == {"stale": True}
