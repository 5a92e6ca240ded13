"""The prediction log's child-process writer on a real PostgreSQL: it commits before it
answers, survives its child being killed, names a failed write's error, ends with its
connection, and talks to its own parent only."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from registry import catalog
from registry.db import Database
from registry.migrate import upgrade
from registry.models import PredictionBatch
from registry.predlog.ids import new_batch_id, prediction_ids
from registry.predlog.process import LogWriteError, ProcessWriter
from registry.predlog.reads import missing_predictions
from registry.predlog.record import LoggedBatch
from registry.predlog.write import logged_batch_ids
from tests.factories import churn_spec


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    upgrade(postgres_url)
    database = Database(postgres_url)
    yield database
    database.dispose()


@pytest.fixture
def model_id(pg: Database) -> int:
    with pg.session() as s:
        return catalog.create_model(s, churn_spec(), actor="test").id


@pytest.fixture
def writer(pg: Database) -> Iterator[ProcessWriter]:
    w = ProcessWriter(pg.url)
    yield w
    w.close()


def _batch(model_id: int, rows: int, seed: int) -> LoggedBatch:
    numeric = np.random.default_rng(seed).normal(size=(rows, 4)).astype("<f4")
    return LoggedBatch(
        id=new_batch_id(),
        model_id=model_id,
        version=1,
        created_at=datetime.now(UTC),
        rows=rows,
        numeric=[numeric[: rows // 2].tobytes(), numeric[rows // 2 :].tobytes()],
        categorical=b'{"color": ["red"]}' if rows == 1 else None,
        labels=b'["no"]' if rows == 1 else b"[]",
        probabilities=None,
    )


def _matrix(batch: LoggedBatch) -> bytes:
    """The numeric matrix's bytes, its pieces joined."""
    return b"".join(batch.numeric)


def _stored(pg: Database) -> dict[str, tuple[int, bytes]]:
    with pg.session() as s:
        rows = s.execute(select(PredictionBatch.id, PredictionBatch.rows, PredictionBatch.numeric))
        return {i: (n, bytes(numeric)) for i, n, numeric in rows}


def test_each_write_is_committed_before_it_returns(pg: Database, model_id: int, writer) -> None:  # type: ignore[no-untyped-def]
    small, large = _batch(model_id, 1, 1), _batch(model_id, 50_000, 2)  # 800 kB in one message
    writer.write([small, large])
    stored = _stored(pg)
    assert stored == {small.id: (1, _matrix(small)), large.id: (50_000, _matrix(large))}
    with pg.session() as s:
        batch = s.get(PredictionBatch, small.id)
        assert batch is not None
        assert (batch.categorical, batch.labels) == ({"color": ["red"]}, ["no"])
        assert batch.created_at == small.created_at
        assert logged_batch_ids(s, [small.id, "f" * 24]) == {small.id}
        assert missing_predictions(s, model_id, prediction_ids(small.id, 1)) == set()


def test_a_killed_child_is_replaced_and_nothing_is_lost(
    pg: Database, model_id: int, writer: ProcessWriter
) -> None:
    first = _batch(model_id, 10, 3)
    writer.write([first])
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while writer.pid == pid and time.monotonic() < deadline:  # reaped once it has died
        time.sleep(0.01)
    second = _batch(model_id, 10, 4)
    writer.write([second])
    assert writer.pid not in (None, pid)
    assert set(_stored(pg)) == {first.id, second.id}


def test_a_child_killed_during_a_write_fails_that_write_and_the_retry_succeeds(
    pg: Database, model_id: int, writer: ProcessWriter
) -> None:
    writer.write([_batch(model_id, 1, 9)])  # the child is up
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the socket's buffer fills and the write blocks
    big = _batch(model_id, 50_000, 10)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.write([big])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], LogWriteError)
    assert big.id not in _stored(pg)
    writer.write([big])
    assert _stored(pg)[big.id] == (50_000, _matrix(big))


def test_a_failed_write_names_its_error_and_the_next_one_succeeds(
    pg: Database, model_id: int, writer: ProcessWriter
) -> None:
    unknown_model = _batch(model_id + 1000, 2, 5)
    with pytest.raises(LogWriteError, match="ForeignKeyViolation"):
        writer.write([unknown_model])
    pid = writer.pid
    good = _batch(model_id, 2, 6)
    writer.write([good])
    assert writer.pid == pid  # the same child, on a fresh connection
    assert set(_stored(pg)) == {good.id}


def test_the_child_ends_with_its_connection_and_keeps_the_password_out_of_its_arguments(
    pg: Database, model_id: int
) -> None:
    writer = ProcessWriter(pg.url)
    writer.write([_batch(model_id, 1, 7)])
    pid = writer.pid
    assert pid is not None
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"postgres" not in arguments and b"registry.predlog.relay" in arguments
    writer.close()
    assert writer.pid is None and not Path(f"/proc/{pid}").exists()
