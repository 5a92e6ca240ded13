"""The prediction log, written off the request path in batches.

A request appends one `LogBatch` (its columns and outputs as they were served) to a bounded
in-memory buffer; one thread serialises batches (float matrices as raw bytes, strings as
JSON) and writes them every `flush_seconds` or when enough rows wait, by binary COPY on
PostgreSQL. A failed write keeps the batches for the next try. When the buffer is full (the
database has been down for long), predict answers 503 rather than serving predictions that
could never be labelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson

from api.serving import MISSING_CATEGORY, Columns
from registry import data
from registry.data import LoggedBatch
from registry.db import Database

log = logging.getLogger(__name__)


class LogOverloaded(RuntimeError):
    """The buffer is full; the database is not keeping up or is down."""


@dataclass(frozen=True)
class LogBatch:
    """What one request served, as the request left it; serialised by the log thread."""

    model_id: int
    version: int
    served_at: float  # time.time(): a datetime is built off the request path
    batch_id: str
    columns: Columns
    labels: np.ndarray
    proba: np.ndarray | None

    @property
    def rows(self) -> int:
        return self.columns.n

    def record(self) -> LoggedBatch:
        """The batch in the log's storage form: the float matrices as bytes, the rest JSON."""
        categorical = None
        if self.columns.categorical:
            categorical = orjson.dumps(
                {
                    name: [None if v == MISSING_CATEGORY else v for v in values.tolist()]
                    for name, values in self.columns.categorical.items()
                }
            ).decode()
        proba = self.proba
        return LoggedBatch(
            id=self.batch_id,
            model_id=self.model_id,
            version=self.version,
            created_at=datetime.fromtimestamp(self.served_at, UTC),
            rows=self.columns.n,
            numeric=_float32_bytes(self.columns.numeric),
            categorical=categorical,
            labels=orjson.dumps(self.labels.tolist()).decode(),
            probabilities=None if proba is None else _float32_bytes(proba),
        )


def _float32_bytes(matrix: np.ndarray) -> bytes:
    return np.ascontiguousarray(matrix, dtype="<f4").tobytes()


class PredictionLog:
    def __init__(self, db: Database, *, flush_seconds: float, batch_size: int, limit: int) -> None:
        self._db = db
        self._flush_seconds, self._batch_size, self._limit = flush_seconds, batch_size, limit
        self._batches: deque[LogBatch] = deque()
        self._pending = 0  # rows waiting
        self._cond = threading.Condition()
        self._appended = 0  # rows ever appended
        self._written = 0  # rows ever written (in append order)
        self._stop = False
        self._urgent = False  # a flush() waits: write without waiting for a full batch
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.enabled = True

    def start(self) -> None:
        self._thread.start()

    def pending(self) -> int:
        return self._pending

    def append(self, batch: LogBatch) -> None:
        if not self.enabled:
            return
        n = batch.rows
        with self._cond:
            if self._pending + n > self._limit:
                raise LogOverloaded(f"{self._pending} predictions wait to be logged")
            self._batches.append(batch)
            self._pending += n
            self._appended += n
            if self._pending >= self._batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row appended before this call is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._appended
            self._urgent = True
            self._cond.notify_all()
            while self._written < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._pending < self._batch_size and not (self._urgent or self._stop):
                    self._cond.wait(self._flush_seconds)
                if not self._batches:
                    self._urgent = False
                    if self._stop:
                        return
                    continue
                take, rows = [], 0
                for batch in self._batches:
                    if take and rows + batch.rows > self._batch_size:
                        break
                    take.append(batch)
                    rows += batch.rows
            try:
                records = [batch.record() for batch in take]
                with self._db.session() as s:
                    data.log_predictions(s, records)
            except Exception:
                log.exception("writing %d predictions failed; will retry", rows)
                time.sleep(self._flush_seconds)
                continue
            with self._cond:
                for _ in take:
                    self._batches.popleft()
                self._pending -= rows
                self._written += rows
                self._cond.notify_all()
