"""Deleting a model over HTTP, on two replicas of one deployment: both stop serving it (the one
that deleted it before answering, the other by the champion notification, as it learns of a
promotion), what was its own goes, and the other model is untouched."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from registry import catalog, labelled
from registry.db import Database
from registry.migrate import upgrade
from registry.models import Event, Job, LabelledRow, ModelVersion, PredictionBatch
from tests.api.conftest import ADMIN, api_settings, app_client, train_version
from tests.factories import churn_rows, churn_spec, features_only

ROWS = {"instances": features_only(churn_rows(4, seed=3))}


def _until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _champion(db: Database, name: str, seed: int) -> None:
    spec = churn_spec(name)
    with db.session() as s:
        model = catalog.create_model(s, spec, actor="test")
        labelled.add_rows(s, model, spec, churn_rows(100, seed=seed))
    version = train_version(db, name, seed=seed)
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        target = catalog.get_version(s, model, version)
        catalog.promote(s, model, target, actor="test", reason="seed")


def _replica(database_url: str, tmp_path: Any, redis_url: str) -> TestClient:
    """A replica that polls the champions once a minute: within a test it learns a change
    only from the Redis notification."""
    settings = api_settings(
        database_url,
        tmp_path,
        notify_url=redis_url,
        champion_poll_seconds=60,
        log_flush_seconds=0.05,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def replicas(db, database_url, tmp_path, redis_url) -> Iterator[tuple[TestClient, TestClient]]:  # type: ignore[no-untyped-def]
    """Two replicas serving `churn` and `other`, both listening for champion changes."""
    _champion(db, "churn", seed=1)
    _champion(db, "other", seed=2)
    with ExitStack() as stack:
        a, b = (stack.enter_context(_replica(database_url, tmp_path, redis_url)) for _ in "ab")
        # A promotion through `a` reaches `b` only by a notification (or by the reload its
        # listener does once subscribed): after it, `b` hears every change.
        v2 = train_version(db, "other", seed=5)
        r = a.post("/v1/admin/models/other/promote", json={"version": v2}, headers=ADMIN)
        assert r.status_code == 200, r.text
        _until(lambda: _version(b, "other") == v2, "b did not follow the promotion")
        yield a, b


def _version(client: TestClient, name: str) -> int | None:
    r = client.post(f"/v1/models/{name}/predict", json=ROWS)
    return r.json()["version"] if r.status_code == 200 else None


def _label(client: TestClient, name: str) -> None:
    """Predict and label the answers: logged predictions and labelled rows of the model."""
    served = client.post(f"/v1/models/{name}/predict", json=ROWS).json()["predictions"]
    labels = [{"prediction_id": p["id"], "label": p["label"]} for p in served]
    r = client.post(f"/v1/models/{name}/feedback", json={"labels": labels})
    assert r.status_code == 202, r.text


def _owned(db: Database, name: str) -> dict[str, Any]:
    """Everything stored for a model, by row id."""
    table: Any
    with db.session() as s:
        model = catalog.get_model(s, name)
        out: dict[str, Any] = {"model": (model.id, model.spec, model.classes)}
        for table in (ModelVersion, LabelledRow, PredictionBatch, Job, Event):
            ids = s.scalars(select(table.id).where(table.model_id == model.id))
            out[table.__tablename__] = sorted(ids)
        return out


def test_a_deleted_model_goes_from_every_replica_and_the_other_stays(replicas, db) -> None:  # type: ignore[no-untyped-def]
    a, b = replicas
    for client in (a, b):
        _label(client, "churn")
        _label(client, "other")
    job, _ = (
        a.post(f"/v1/admin/models/{name}/retrain", headers=ADMIN).json()["job_id"]
        for name in ("churn", "other")
    )
    before = _owned(db, "other")
    assert all(before.values())

    r = a.delete("/v1/admin/models/churn", headers=ADMIN)
    assert r.status_code == 200, r.text
    gone = r.json()
    assert gone == {
        "model": "churn",
        "champion_version": 1,
        "versions": 1,
        "labelled_rows": 100 + 8,
        "predictions": 8,
        "jobs": 1,
        "cancelled_jobs": [job],
        "artifacts_deleted": 2,
        "artifacts_kept": 0,
    }
    assert _owned(db, "other") == before
    unknown = {"detail": "model 'churn' not found"}
    r = a.post("/v1/models/churn/predict", json=ROWS)  # the deleting replica: at once
    assert (r.status_code, r.json()) == (404, unknown)
    _until(lambda: _version(b, "churn") is None, "b still serves the deleted model", timeout=5)
    for client in (a, b):
        r = client.post("/v1/models/churn/predict", json=ROWS)
        assert (r.status_code, r.json()) == (404, unknown)
        r = client.post("/v2/models/churn/infer", json={"inputs": []})
        assert r.status_code == 404
        assert client.get("/v1/models/churn").status_code == 404
        assert [m["name"] for m in client.get("/v1/models").json()] == ["other"]
        assert _version(client, "other") == 2
    assert a.get(f"/v1/admin/jobs/{job}", headers=ADMIN).status_code == 404
    assert a.delete("/v1/admin/models/churn", headers=ADMIN).status_code == 404

    log = a.get("/v1/admin/events", params={"model": "churn"}, headers=ADMIN).json()
    assert [(e["kind"], e["actor"]) for e in log[:2]] == [
        ("model_deleted", "admin"),
        ("retrain_superseded", "admin"),
    ]
    assert log[0]["detail"] == {k: v for k, v in gone.items() if k != "model"}
    assert {e["model"] for e in log} == {"churn"} and log[-1]["kind"] == "model_created"


def test_the_deleting_replica_stops_serving_before_it_answers(db, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without notifications (the embedded deployment) and with a slow poll, the replica that
    deleted the model serves it no more once the delete is answered, nor says it does."""
    _champion(db, "churn", seed=1)
    series = 'loopserve_served_version{model="churn"} 1.0'
    with app_client(database_url, tmp_path, champion_poll_seconds=60) as client:
        assert _version(client, "churn") == 1 and series in client.get("/metrics").text
        assert client.delete("/v1/admin/models/churn", headers=ADMIN).status_code == 200
        r = client.post("/v1/models/churn/predict", json=ROWS)
        assert (r.status_code, r.json()) == (404, {"detail": "model 'churn' not found"})
        assert "loopserve_served_version{" not in client.get("/metrics").text


def test_a_retrain_asked_while_the_model_is_deleted_is_a_404(served) -> None:  # type: ignore[no-untyped-def]
    client, db = served
    deleting = threading.Event()

    def delete() -> None:
        with db.session() as s:
            catalog.delete_model(s, "churn", actor="test")
            deleting.set()
            time.sleep(0.5)  # the retrain request arrives before this commits

    thread = threading.Thread(target=delete)
    thread.start()
    assert deleting.wait(10)
    r = client.post("/v1/admin/models/churn/retrain", headers=ADMIN)
    thread.join(10)
    assert (r.status_code, r.json()) == (404, {"detail": "model 'churn' not found"})


def test_feedback_racing_the_delete_is_a_404(postgres_url, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Feedback reads its model without a lock; a delete that commits before its labels are
    written (on Postgres: SQLite's writers take the lock at BEGIN, so it cannot happen there)
    leaves it the answer a later feedback gets, not a 500 from the foreign key."""
    upgrade(postgres_url)
    db = Database(postgres_url)
    try:
        _champion(db, "churn", seed=1)
        store = labelled.add_feedback

        def delete_first(*args: Any, **kwargs: Any) -> int:
            with db.session() as s:  # another connection, committed before the insert
                catalog.delete_model(s, "churn", actor="test")
            return store(*args, **kwargs)

        labels = [{"features": row, "label": "yes"} for row in features_only(churn_rows(3, seed=4))]
        with app_client(postgres_url, tmp_path) as client:
            monkeypatch.setattr(labelled, "add_feedback", delete_first)
            r = client.post("/v1/models/churn/feedback", json={"labels": labels})
        assert (r.status_code, r.json()) == (404, {"detail": "model 'churn' not found"})
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(LabelledRow)) == 0
    finally:
        db.dispose()
