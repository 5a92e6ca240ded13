"""The prediction log, written off the request path in batches.

Requests append rows to a bounded in-memory buffer; one thread inserts them every
`flush_seconds` or when a batch is full. A failed insert keeps the rows for the next try. When
the buffer is full (the database has been down for long), predict answers 503 rather than
serving predictions that could never be labelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from registry import data
from registry.db import Database

log = logging.getLogger(__name__)


class LogOverloaded(RuntimeError):
    """The buffer is full; the database is not keeping up or is down."""


class PredictionLog:
    def __init__(self, db: Database, *, flush_seconds: float, batch_size: int, limit: int) -> None:
        self._db = db
        self._flush_seconds, self._batch_size, self._limit = flush_seconds, batch_size, limit
        self._rows: deque[dict[str, Any]] = deque()
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
        return len(self._rows)

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        with self._cond:
            if len(self._rows) + len(rows) > self._limit:
                raise LogOverloaded(f"{len(self._rows)} predictions wait to be logged")
            self._rows.extend(rows)
            self._appended += len(rows)
            if len(self._rows) >= self._batch_size:
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
                if len(self._rows) < self._batch_size and not (self._urgent or self._stop):
                    self._cond.wait(self._flush_seconds)
                if not self._rows:
                    self._urgent = False
                if self._stop and not self._rows:
                    return
                batch = [self._rows[i] for i in range(min(len(self._rows), self._batch_size))]
            if not batch:
                continue
            try:
                with self._db.session() as s:
                    data.log_predictions(s, batch)
            except Exception:
                log.exception("writing %d predictions failed; will retry", len(batch))
                time.sleep(self._flush_seconds)
                continue
            with self._cond:
                for _ in batch:
                    self._rows.popleft()
                self._written += len(batch)
                self._cond.notify_all()
