"""The worker logs one line per step of a job, each naming the job (`job_id`, `attempt`,
`step`, and `job <id>:` in its message)."""

from __future__ import annotations

import logging

from registry import catalog, jobs, labelled
from registry.notify import ChampionNotifier
from tests.factories import churn_rows, churn_spec
from worker.training import Skipped, claim, run_local


def _job(db, rows: int) -> str:  # type: ignore[no-untyped-def]
    spec = churn_spec()
    with db.session() as s:
        model = catalog.create_model(s, spec, actor="test")
        labelled.add_rows(s, model, spec, churn_rows(rows, seed=1))
        return jobs.submit(s, model, trigger="admin", actor="t")[0].id


def _steps(caplog, job_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    lines = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    for r in lines:
        assert r.getMessage().startswith(f"job {job_id}: ") or "job " + job_id in r.getMessage()
    return [r.step for r in lines]


def test_a_retrain_logs_each_step(db, caplog) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(db, 400)
    with caplog.at_level(logging.INFO, logger="worker"):
        job = claim(db, job_id, worker="w1")
        assert not isinstance(job, Skipped)
        run_local(db, job, heartbeat_seconds=0.5, notifier=ChampionNotifier(None))
        assert isinstance(claim(db, job_id, worker="w2"), Skipped)  # done: not claimed again
    assert _steps(caplog, job_id) == ["started", "searched", "judged", "registered", "skipped"]
    started, *_, registered, _ = [r for r in caplog.records if getattr(r, "job_id", None)]
    assert started.attempt == 1 and "model churn started on w1" in started.getMessage()
    assert registered.getMessage().endswith("v1 registered, promoted; champion v1")


def test_a_failed_retrain_logs_why(db, caplog) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(db, 12)
    with caplog.at_level(logging.INFO, logger="worker"):
        assert isinstance(claim(db, job_id, worker="w1"), Skipped)
    assert _steps(caplog, job_id) == ["failed"]
    (failed,) = [r for r in caplog.records if getattr(r, "job_id", None)]
    assert "too few" in failed.getMessage() and failed.attempt == 1
