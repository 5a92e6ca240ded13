"""Crashes and outages: a killed worker's job runs again; a down broker or database is a 503
that says what to do."""

from __future__ import annotations

import time

import pytest

from tests.e2e.stack import Client, Stack
from tests.factories import churn_rows, churn_spec

pytestmark = pytest.mark.slow


def test_a_job_whose_worker_was_killed_runs_again(stack: Stack) -> None:
    stack.start_api()
    stack.start_worker("doomed")
    stack.start_beat()
    api = stack.client()
    slow = churn_spec(
        "slow",
        retrain={"families": ["mlp", "random_forest"], "max_candidates": 40, "max_seconds": 120},
    )
    api.ok("POST", "/v1/admin/models", 201, json=slow.model_dump())
    api.ok("POST", "/v1/admin/models/slow/data", 202, json={"rows": churn_rows(2000, seed=5)})
    job_id = api.ok("POST", "/v1/admin/models/slow/retrain", 202)["job_id"]
    _wait_status(api, job_id, "running")
    stack.kill("doomed")  # SIGKILL mid-training: no chance to clean up

    stack.start_worker("rescuer")
    job = api.wait_job(job_id, timeout=300)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert job["result"]["decision"] == "promoted"
    kinds = [e["kind"] for e in api.ok("GET", "/v1/admin/events", params={"model": "slow"})]
    assert "retrain_requeued" in kinds
    versions = api.ok("GET", "/v1/models/slow/versions")
    assert [v["version"] for v in versions] == [1]  # the killed attempt registered nothing


def _wait_status(api: Client, job_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.ok("GET", f"/v1/admin/jobs/{job_id}")["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never became {status}")


def test_a_down_broker_is_a_503_and_the_job_waits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "redis://127.0.0.1:1/0")
    try:
        api = stack.client(stack.start_api())
        api.ok("POST", "/v1/admin/models", 201, json=churn_spec().model_dump())
        r = api.post("/v1/admin/models/churn/retrain")
        assert r.status_code == 503, r.text
        assert "broker is unreachable" in r.json()["detail"]
        assert "LOOPSERVE_BROKER_URL" in r.json()["detail"]
        assert "must be restarted" not in r.json()["detail"]  # Celery's words; not so here
        again = api.ok("POST", "/v1/admin/models/churn/retrain", 202)  # recorded, joined
        assert again["joined"] and again["status"] == "queued"
    finally:
        stack.stop()


def test_a_down_database_is_a_503(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", None)
    stack.env["LOOPSERVE_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    try:
        api = stack.client(stack.start_api())
        for path in ("/readyz", "/v1/models"):
            r = api.get(path)
            assert r.status_code == 503, (path, r.text)
        r = api.post("/v1/models/churn/predict", json={"instances": [{"x1": 1}]})
        assert r.status_code == 503 and "LOOPSERVE_DATABASE_URL" in r.json()["detail"]
    finally:
        stack.stop()
