"""The API's prediction-log buffer: requests of one model version share a logged row, every id
finds its row's features, and nothing is acknowledged that could not be logged."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from api.champions import MISSING_CATEGORY, Columns
from api.predlog import LogOverloaded, PredictionLog
from registry import catalog
from registry.db import Database
from registry.migrate import upgrade
from registry.models import PredictionBatch
from registry.predlog.process import ProcessWriter
from registry.predlog.reads import logged_predictions, missing_predictions
from registry.predlog.write import SessionWriter
from tests.factories import churn_spec


def _columns(rows: list[tuple[float | None, str | None]]) -> Columns:
    """Churn rows with x1 as given, x2..x4 fixed, and color as given."""
    numeric = np.array(
        [[np.nan if x is None else x, 1.5, -2.0, 0.25] for x, _ in rows], dtype=np.float32
    )
    colors = np.array([MISSING_CATEGORY if c is None else c for _, c in rows], dtype=object)
    return Columns(len(rows), numeric, {"color": colors})


def _served(columns: Columns) -> tuple[np.ndarray, np.ndarray]:
    labels = np.array(["no"] * columns.n, dtype=object)
    return labels, np.full((columns.n, 2), 0.5, dtype=np.float32)


@pytest.fixture
def model_id(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return catalog.create_model(s, churn_spec(), actor="test").id


def _log(db, **kw) -> PredictionLog:  # type: ignore[no-untyped-def]
    settings = {"flush_seconds": 30.0, "batch_size": 1000, "limit": 10_000} | kw
    log = PredictionLog(db, **settings)
    log.start()
    return log


def _logged_rows(db) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return [
            (version, rows)
            for version, rows in s.execute(
                select(PredictionBatch.version, PredictionBatch.rows).order_by(
                    PredictionBatch.created_at
                )
            )
        ]


def test_requests_of_one_version_share_a_row_and_ids_find_their_features(db, model_id) -> None:  # type: ignore[no-untyped-def]
    log = _log(db)
    first = _columns([(0.1, "red"), (None, None)])
    second = _columns([(7.0, "blue")])
    ids = log.add(model_id, 1, first, *_served(first))
    ids += log.add(model_id, 1, second, *_served(second))
    other = log.add(model_id, 2, second, *_served(second))
    assert log.pending() == 4
    assert log.flush(timeout=10)
    log.close()
    assert sorted(_logged_rows(db)) == [(1, 3), (2, 1)]
    assert len({i[:24] for i in ids}) == 1 and other[0][:24] != ids[0][:24]
    with db.session() as s:
        found = logged_predictions(s, model_id, churn_spec(), [*ids, *other])
        assert missing_predictions(s, model_id, [*ids, ids[0][:24] + "00000003"]) == {
            ids[0][:24] + "00000003"
        }
    assert [found[i].features for i in ids] == [
        {"x1": 0.1, "x2": 1.5, "x3": -2.0, "x4": 0.25, "color": "red"},
        {"x1": None, "x2": 1.5, "x3": -2.0, "x4": 0.25, "color": None},
        {"x1": 7.0, "x2": 1.5, "x3": -2.0, "x4": 0.25, "color": "blue"},
    ]
    assert found[other[0]].features["x1"] == 7.0 and found[other[0]].version == 2


def test_a_full_chunk_is_sealed_and_a_request_never_splits(db, model_id) -> None:  # type: ignore[no-untyped-def]
    log = _log(db, batch_size=4)
    three = _columns([(1.0, "red")] * 3)
    ids = [log.add(model_id, 1, three, *_served(three)) for _ in range(3)]
    assert log.flush(timeout=10)
    log.close()
    assert sorted(rows for _, rows in _logged_rows(db)) == [3, 6]  # sealed once it held >= 4
    assert [len({i[:24] for i in part}) for part in ids] == [1, 1, 1]
    with db.session() as s:
        assert missing_predictions(s, model_id, [i for part in ids for i in part]) == set()


def test_the_writer_flushes_on_its_own(db, model_id) -> None:  # type: ignore[no-untyped-def]
    log = _log(db, flush_seconds=0.05)
    one = _columns([(2.0, "green")])
    log.add(model_id, 1, one, *_served(one))
    deadline = time.monotonic() + 5
    while log.pending() and time.monotonic() < deadline:  # no flush(): the writer's own timer
        time.sleep(0.02)
    assert log.pending() == 0
    log.close()
    assert _logged_rows(db) == [(1, 1)]


def test_predict_sheds_rather_than_serve_what_it_cannot_log(db, model_id) -> None:  # type: ignore[no-untyped-def]
    log = PredictionLog(db, flush_seconds=30.0, batch_size=10_000, limit=1000)  # not started
    big = _columns([(1.0, "red")] * 600)
    log.add(model_id, 1, big, *_served(big))
    with pytest.raises(LogOverloaded, match="600 predictions wait"):
        log.add(model_id, 1, big, *_served(big))
    assert log.pending() == 600


def test_ids_without_the_log_are_unique_and_nothing_is_written(db, model_id) -> None:  # type: ignore[no-untyped-def]
    log = _log(db)
    log.enabled = False
    two = _columns([(1.0, "red")] * 2)
    ids = log.add(model_id, 1, two, *_served(two)) + log.add(model_id, 1, two, *_served(two))
    assert len(set(ids)) == 4 and log.pending() == 0
    log.close()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PredictionBatch)) == 0


class _AnswerLostOnce:
    """Commits the first write and then fails it, as when the connection drops between the
    commit and its answer; later writes go through."""

    def __init__(self, db) -> None:  # type: ignore[no-untyped-def]
        self._inner = SessionWriter(db)
        self.calls: list[int] = []

    def write(self, batches) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(len(batches))
        self._inner.write(batches)
        if len(self.calls) == 1:
            raise ConnectionError("connection lost after the commit")

    def close(self) -> None:
        pass


def test_a_write_whose_answer_was_lost_is_not_written_again(db, model_id) -> None:  # type: ignore[no-untyped-def]
    writer = _AnswerLostOnce(db)
    log = _log(db, flush_seconds=0.05, writer=writer)
    two = _columns([(3.0, "red")] * 2)
    log.add(model_id, 1, two, *_served(two))
    assert log.flush(timeout=10)
    one = _columns([(4.0, "blue")])
    log.add(model_id, 1, one, *_served(one))  # the log goes on after the recovery
    assert log.flush(timeout=10)
    log.close()
    assert writer.calls == [1, 0, 1]  # the retry found the chunk written and wrote nothing
    assert sorted(_logged_rows(db)) == [(1, 1), (1, 2)]


def test_predictions_of_a_deleted_model_are_dropped_and_the_rest_logged(db, model_id) -> None:  # type: ignore[no-untyped-def]
    """A replica that has not learnt yet that a model was deleted serves and buffers its
    predictions: the database refuses them, and they must not hold up the other models'."""
    with db.session() as s:
        other = catalog.create_model(s, churn_spec("other"), actor="test").id
        catalog.delete_model(s, "churn", actor="test")
    log = _log(db, flush_seconds=0.05)
    rows = _columns([(0.5, "red"), (None, None)])
    log.add(model_id, 1, rows, *_served(rows))
    kept = log.add(other, 2, rows, *_served(rows))
    assert log.flush(timeout=10)
    log.close()
    assert _logged_rows(db) == [(2, 2)]
    with db.session() as s:
        assert missing_predictions(s, other, kept) == set()


def test_on_postgres_a_child_process_writes_the_log(postgres_url) -> None:  # type: ignore[no-untyped-def]
    upgrade(postgres_url)
    db = Database(postgres_url)
    with db.session() as s:
        model_id = catalog.create_model(s, churn_spec(), actor="test").id
    writer = ProcessWriter(db.url)
    log = _log(db, writer=writer)
    rows = _columns([(0.5, "red"), (None, None)])
    ids = log.add(model_id, 3, rows, *_served(rows))
    assert log.flush(timeout=10)
    child = writer.pid
    assert child is not None and child != os.getpid()
    log.close()
    assert writer.pid is None  # closing the log ends the child
    with db.session() as s:
        found = logged_predictions(s, model_id, churn_spec(), ids)
    db.dispose()
    assert [found[i].features["x1"] for i in ids] == [0.5, None]
    assert [found[i].features["color"] for i in ids] == ["red", None]
