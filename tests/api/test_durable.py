"""Durable predictions (LOOPSERVE_DURABLE_PREDICTIONS): a request is answered only once its
rows are committed, concurrent requests share one commit, and a log that cannot be written is
a 503 after a short bound, never a hang. The kill -9 proof is tests/e2e/test_durable.py."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

from api.predlog import LogNotDurable, PredictionLog
from registry import catalog
from registry.predlog.reads import missing_predictions
from registry.predlog.write import SessionWriter
from tests.api.conftest import app_client, with_champion
from tests.api.test_predlog import _columns, _logged_rows, _served
from tests.factories import churn_rows, churn_spec, features_only


@pytest.fixture
def model_id(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return catalog.create_model(s, churn_spec(), actor="test").id


class _Gated:
    """A session writer that records what each write carries and holds its first write until
    `release` is set, as a slow commit would."""

    def __init__(self, db) -> None:  # type: ignore[no-untyped-def]
        self._inner = SessionWriter(db)
        self.entered, self.release = threading.Event(), threading.Event()
        self.writes: list[list[int]] = []  # rows of each chunk, per write

    def open(self) -> None:
        pass

    def write(self, batches) -> None:  # type: ignore[no-untyped-def]
        self.writes.append([b.rows for b in batches])
        self.entered.set()
        if len(self.writes) == 1:
            assert self.release.wait(10)
        self._inner.write(batches)

    def close(self) -> None:
        pass


def _durable_log(db, writer, **kw) -> PredictionLog:  # type: ignore[no-untyped-def]
    settings = {"flush_seconds": 30.0, "batch_size": 1000, "limit": 10_000} | kw
    log = PredictionLog(db, writer=writer, durable=True, **settings)
    log.start()
    return log


def test_concurrent_durable_requests_share_one_commit(db, model_id) -> None:  # type: ignore[no-untyped-def]
    """Eight requests that arrive while a write is in progress are answered together after the
    next one: one write, one logged row, and none of them before its commit. The writer never
    waits for its 30 s timer."""
    writer = _Gated(db)
    log = _durable_log(db, writer)
    one = _columns([(1.0, "red")])

    async def requests() -> list[list[str]]:
        first = log.add(model_id, 1, one, *_served(one))
        lone = asyncio.create_task(log.written(first))
        assert await asyncio.to_thread(writer.entered.wait, 10)  # the first write is under way
        ids = [log.add(model_id, 1, one, *_served(one)) for _ in range(8)]
        waiting = [asyncio.create_task(log.written(i)) for i in ids]
        await asyncio.sleep(0.2)
        assert not any(t.done() for t in [lone, *waiting])  # nothing answered before its commit
        writer.release.set()
        await asyncio.wait_for(asyncio.gather(lone, *waiting), 10)
        return [first, *ids]

    start = time.monotonic()
    ids = asyncio.run(requests())
    elapsed = time.monotonic() - start
    try:
        assert writer.writes == [[1], [8]]  # the eight requests: one write of one chunk
        assert elapsed < 10
        assert sorted(_logged_rows(db)) == [(1, 1), (1, 8)]
        with db.session() as s:
            assert missing_predictions(s, model_id, [i for part in ids for i in part]) == set()
    finally:
        log.close()


def test_a_lone_durable_request_is_answered_after_its_own_commit(db, model_id) -> None:  # type: ignore[no-untyped-def]
    log = _durable_log(db, SessionWriter(db))
    two = _columns([(2.0, "blue"), (None, None)])

    async def request() -> list[str]:
        ids = log.add(model_id, 1, two, *_served(two))
        await asyncio.wait_for(log.written(ids), 5)
        return ids

    try:
        ids = asyncio.run(request())
        with db.session() as s:  # committed when the request returned, not 30 s later
            assert missing_predictions(s, model_id, ids) == set()
    finally:
        log.close()


class _Down:
    """A writer whose database is down until `up` is set."""

    def __init__(self, db) -> None:  # type: ignore[no-untyped-def]
        self._inner = SessionWriter(db)
        self.up = threading.Event()

    def open(self) -> None:
        pass

    def write(self, batches) -> None:  # type: ignore[no-untyped-def]
        if not self.up.is_set():
            raise ConnectionError("the database is down")
        self._inner.write(batches)

    def close(self) -> None:
        pass


def test_a_durable_request_on_a_down_database_fails_after_the_bound(db, model_id) -> None:  # type: ignore[no-untyped-def]
    """The first request waits `wait_seconds`; once writes have failed for longer, the next is
    refused at once; when the database is back, requests are answered again and the rows of
    the refused ones are written too (no one holds their ids, which is harmless)."""
    writer = _Down(db)
    log = _durable_log(db, writer, flush_seconds=0.05, wait_seconds=0.5)
    one = _columns([(3.0, "red")])

    async def timed() -> float:
        ids = log.add(model_id, 1, one, *_served(one))
        start = time.monotonic()
        with pytest.raises(LogNotDurable):
            await asyncio.wait_for(log.written(ids), 5)
        return time.monotonic() - start

    async def answered() -> list[str]:
        ids = log.add(model_id, 1, one, *_served(one))
        await asyncio.wait_for(log.written(ids), 5)
        return ids

    try:
        first = asyncio.run(timed())
        assert 0.4 < first < 2
        time.sleep(0.2)  # the writes have now failed for longer than the bound
        assert asyncio.run(timed()) < 0.1  # so the next request is refused at once
        writer.up.set()
        assert log.flush(timeout=5)  # the refused requests' rows, at the writer's next try
        ids = asyncio.run(answered())
        with db.session() as s:
            assert missing_predictions(s, model_id, ids) == set()
        assert sum(rows for _, rows in _logged_rows(db)) == 3
    finally:
        log.close()


def test_a_durable_200_means_the_ids_are_logged(db, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through the app, v1 and V2: the ids of a 200 are in the log as it arrives (the log's
    own timer would write them 30 s later)."""
    with_champion(db)
    rows = features_only(churn_rows(3, seed=2))
    settings = {"durable_predictions": True, "log_flush_seconds": 30.0}
    with app_client(database_url, tmp_path, **settings) as client:
        r = client.post("/v1/models/churn/predict", json={"instances": rows})
        assert r.status_code == 200, r.text
        ids = [p["id"] for p in r.json()["predictions"]]
        with db.session() as s:
            model_id = catalog.get_model(s, "churn").id
            assert missing_predictions(s, model_id, ids) == set()
        v2 = {
            "inputs": [
                {"name": "x1", "shape": [1, 1], "datatype": "FP32", "data": [0.5]},
                {"name": "x2", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
                {"name": "x3", "shape": [1, 1], "datatype": "FP32", "data": [2.0]},
                {"name": "x4", "shape": [1, 1], "datatype": "FP32", "data": [3.0]},
                {"name": "color", "shape": [1, 1], "datatype": "BYTES", "data": ["red"]},
            ]
        }
        r = client.post("/v2/models/churn/infer", json=v2)
        assert r.status_code == 200, r.text
        (pid,) = next(o["data"] for o in r.json()["outputs"] if o["name"] == "prediction_id")
        with db.session() as s:
            assert missing_predictions(s, model_id, [pid]) == set()


def test_a_durable_predict_on_a_stuck_database_is_a_503_then_recovers(  # type: ignore[no-untyped-def]
    postgres_url, tmp_path
) -> None:
    """The log's table locked by another transaction (a database that does not answer): predict
    is a 503 saying what to do after the bound, not a hang; unlocked, predict answers again."""
    from registry.db import Database
    from registry.migrate import upgrade

    upgrade(postgres_url)
    db = Database(postgres_url)
    with_champion(db)
    body = {"instances": features_only(churn_rows(1, seed=3))}
    settings = {"durable_predictions": True, "durable_wait_seconds": 1.0}
    try:
        with app_client(postgres_url, tmp_path, **settings) as client:
            assert client.post("/v1/models/churn/predict", json=body).status_code == 200
            libpq = postgres_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(libpq) as lock:
                lock.execute("LOCK TABLE prediction_batches IN ACCESS EXCLUSIVE MODE")
                start = time.monotonic()
                r = client.post("/v1/models/churn/predict", json=body)
                elapsed = time.monotonic() - start
                assert r.status_code == 503, r.text
                assert 0.9 < elapsed < 5
                detail = r.json()["detail"]
                assert "not written within 1 s" in detail
                assert "LOOPSERVE_DATABASE_URL" in detail and "retry" in detail
                lock.rollback()  # the database answers again
            r = client.post("/v1/models/churn/predict", json=body)
            assert r.status_code == 200, r.text
    finally:
        db.dispose()
