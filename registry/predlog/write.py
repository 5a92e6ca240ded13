"""Writing the prediction log in a session, and the interface every log writer keeps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import Database
from registry.models import Model, PredictionBatch
from registry.predlog.record import COLUMNS, LOG_COPY, LoggedBatch, copy_stream


class BatchWriter(Protocol):
    """Commits logged batches, or raises (the write may then have committed or not)."""

    def open(self) -> None:
        """Make ready to write, so that the first write waits no longer than the others."""

    def write(self, batches: Sequence[LoggedBatch]) -> None: ...

    def close(self) -> None: ...


class SessionWriter:
    """Writes in the calling thread, through a session of the database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open(self) -> None:
        pass  # the engine connects on the first write, as fast as on any other

    def write(self, batches: Sequence[LoggedBatch]) -> None:
        with self._db.session() as s:
            log_predictions(s, batches)

    def close(self) -> None:
        pass


def log_predictions(session: Session, batches: Sequence[LoggedBatch]) -> None:
    """Write logged batches, one row each: binary COPY on PostgreSQL, executemany elsewhere."""
    if not batches:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None  # a live psycopg connection while the session holds it
        with raw.cursor() as cur, cur.copy(LOG_COPY) as copy:
            for piece in copy_stream(batches):
                copy.write(piece)
        return
    rows = [
        (
            b.id,
            b.model_id,
            b.version,
            b.rows,
            b"".join(b.numeric),
            _text(b.categorical),
            _text(b.labels),
            None if b.probabilities is None else b"".join(b.probabilities),
            _sqlite_time(b.created_at),
        )
        for b in batches
    ]
    connection.exec_driver_sql(
        f"INSERT INTO prediction_batches ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )


def logged_batch_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of these batch ids the log holds: a write whose answer was lost may have
    committed."""
    wanted = list(ids)
    if not wanted:
        return set()
    found = session.scalars(select(PredictionBatch.id).where(PredictionBatch.id.in_(wanted)))
    return set(found)


def models_kept(session: Session, model_ids: Iterable[int]) -> set[int]:
    """Which of these models still exist: a batch of a model deleted since it was served can
    never be written (its model reference would dangle)."""
    wanted = list(model_ids)
    if not wanted:
        return set()
    return set(session.scalars(select(Model.id).where(Model.id.in_(wanted))))


def _text(json: bytes | None) -> str | None:
    """SQLite keeps JSON as TEXT, where SQLAlchemy's JSON type reads it."""
    return None if json is None else json.decode()


def _sqlite_time(at: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime writes, so the ORM reads these rows back."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
