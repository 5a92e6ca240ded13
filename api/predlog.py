"""The prediction log, written off the request path in batches.

A request appends one `LogBatch` (its columns and outputs as they were served) to a bounded
in-memory buffer; one thread turns batches into rows and inserts them every `flush_seconds` or
when enough rows wait. Building per-row JSON happens in that thread, not in the request. A
failed insert keeps the batches for the next try. When the buffer is full (the database has
been down for long), predict answers 503 rather than serving predictions that could never be
labelled.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from registry import data
from registry.db import Database

log = logging.getLogger(__name__)


class LogOverloaded(RuntimeError):
    """The buffer is full; the database is not keeping up or is down."""


@dataclass(frozen=True)
class LogBatch:
    """What one request served: enough to rebuild every row's log entry later."""

    model_id: int
    version: int
    created_at: datetime
    ids: list[str]
    columns: dict[str, Sequence[Any]]  # raw feature values per feature, None for missing
    labels: Sequence[Any]
    proba: np.ndarray | None
    classes: list[str] | None

    def rows(self) -> list[dict[str, Any]]:
        names = list(self.columns)
        values = zip(*(_plain(self.columns[n]) for n in names), strict=True)
        labels = _plain(self.labels)
        proba = self.proba.tolist() if self.proba is not None else None
        out = []
        for i, row in enumerate(values):
            output: dict[str, Any] = {"label": labels[i]}
            if proba is not None and self.classes is not None:
                output["probabilities"] = dict(zip(self.classes, proba[i], strict=True))
            out.append(
                {
                    "id": self.ids[i],
                    "model_id": self.model_id,
                    "version": self.version,
                    "features": dict(zip(names, row, strict=True)),
                    "output": output,
                    "created_at": self.created_at,
                }
            )
        return out


def _plain(values: Sequence[Any]) -> list[Any]:
    """JSON-safe Python values: arrays to lists, NaN to None (JSON has no NaN)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if items and isinstance(items[0], list):  # an [N, 1] column
        items = [v[0] for v in items]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in items]


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
        n = len(batch.ids)
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
                    if take and rows + len(batch.ids) > self._batch_size:
                        break
                    take.append(batch)
                    rows += len(batch.ids)
            try:
                entries = [row for batch in take for row in batch.rows()]
                with self._db.session() as s:
                    for start in range(0, len(entries), self._batch_size):
                        data.log_predictions(s, entries[start : start + self._batch_size])
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
