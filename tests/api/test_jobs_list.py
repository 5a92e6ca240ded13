"""`GET /v1/admin/jobs`: retrain jobs newest first, filtered by model and status, a page at a
time by cursor, each as `GET /v1/admin/jobs/{job_id}` answers it less the search's trials;
bad filters are 422s naming their parameter. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import catalog
from registry.db import Database
from registry.models import Job, JobStatus, Trigger, utcnow
from tests.api.conftest import ADMIN, app_client
from tests.factories import churn_spec

URL = "/v1/admin/jobs"
TRIALS = [{"kind": "refit", "stage": "rung 0", "validation_score": 0.8}] * 3


def _result(version: int) -> dict[str, Any]:
    return {
        "candidate_version": version,
        "champion_version": version,
        "decision": "promoted",
        "reason": "better",
        "metrics": {"challenger": 0.9},
        "trials": TRIALS,
    }


def _jobs(db: Database) -> list[str]:
    """Seven jobs of two models, two of them created at the same instant; their ids, newest
    first as the listing orders them (creation time, then id)."""
    base = utcnow() - timedelta(hours=1)
    with db.session() as s:
        churn = catalog.create_model(s, churn_spec("churn"), actor="test")
        other = catalog.create_model(s, churn_spec("other"), actor="test")
        made = [
            Job(model_id=churn.id, status=JobStatus.SUCCEEDED, result=_result(1)),
            Job(model_id=churn.id, status=JobStatus.FAILED, error="no rows", result=None),
            Job(model_id=other.id, status=JobStatus.SUCCEEDED, result=_result(1)),
            Job(model_id=churn.id, status=JobStatus.SUCCEEDED, result=_result(2)),
            Job(model_id=churn.id, status=JobStatus.FAILED, error="superseded"),
            Job(model_id=other.id, status=JobStatus.QUEUED),
            Job(model_id=churn.id, status=JobStatus.RUNNING, progress=0.25),
        ]
        for i, job in enumerate(made):
            job.trigger = Trigger.ADMIN
            job.created_at = base + timedelta(seconds=min(i, 3))  # 3, 4, 5, 6: the same instant
            s.add(job)
        s.flush()
        ordered = sorted(made, key=lambda j: (j.created_at, j.id), reverse=True)
        return [j.id for j in ordered]


@pytest.fixture
def listed(db: Database, database_url: str, tmp_path) -> tuple[TestClient, list[str]]:  # type: ignore[no-untyped-def]
    ids = _jobs(db)
    with app_client(database_url, tmp_path) as client:
        yield client, ids


def _get(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get(URL, params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def test_newest_first_each_as_its_own_route_answers_it(listed) -> None:  # type: ignore[no-untyped-def]
    client, ids = listed
    page = _get(client)
    assert [j["job_id"] for j in page["jobs"]] == ids and page["next_cursor"] is None
    for item in page["jobs"]:
        whole = client.get(f"{URL}/{item['job_id']}", headers=ADMIN).json()
        if whole["result"] is not None:
            assert whole["result"].pop("trials") == TRIALS
        assert item == whole
    assert {j["model"] for j in page["jobs"]} == {"churn", "other"}


def test_pages_follow_the_cursor_without_repeats_or_gaps(listed, db) -> None:  # type: ignore[no-untyped-def]
    client, ids = listed
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = _get(client, **params)
        pages += 1
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if pages == 1:  # a job created meanwhile is on no later page
            with db.session() as s:
                model = catalog.get_model(s, "other")
                s.add(Job(model_id=model.id, trigger=Trigger.LABELS, status=JobStatus.FAILED))
        if cursor is None:
            break
    assert seen == ids and pages == 4
    everything = _get(client, limit=8)  # the one created meanwhile, first
    assert [j["job_id"] for j in everything["jobs"][1:]] == ids
    assert everything["next_cursor"] is None and _get(client, limit=7)["next_cursor"]


def test_filters_by_model_and_status(listed) -> None:  # type: ignore[no-untyped-def]
    client, _ = listed
    mine = _get(client, model="other")["jobs"]
    assert [j["status"] for j in mine] == ["queued", "succeeded"]
    failed = _get(client, model="churn", status="failed")["jobs"]
    assert [j["error"] for j in failed] == ["superseded", "no rows"]
    page = _get(client, status="succeeded", limit=1)
    assert len(page["jobs"]) == 1 and page["next_cursor"]
    rest = _get(client, status="succeeded", cursor=page["next_cursor"])["jobs"]
    assert [j["status"] for j in rest] == ["succeeded", "succeeded"]
    assert _get(client, model="other", status="running") == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"status": ""}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "yesterday"}, "cursor"),
        ({"cursor": "1." + "x" * 33}, "cursor"),
    ],
)
def test_a_bad_filter_is_a_422_naming_it(listed, params, field) -> None:  # type: ignore[no-untyped-def]
    client, _ = listed
    r = client.get(URL, params=params, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["detail"]] == [field]


def test_an_unknown_model_is_a_404_and_the_token_is_needed(listed) -> None:  # type: ignore[no-untyped-def]
    client, _ = listed
    r = client.get(URL, params={"model": "nope"}, headers=ADMIN)
    assert r.status_code == 404 and r.json() == {"detail": "model 'nope' not found"}
    assert client.get(URL).status_code == 401
