"""The API's buffer of the prediction log (registry.predlog), written off the request path in
chunks.

Requests served by the same model version join one open `Chunk`; a chunk is one logged batch,
and its id followed by a row's position in it is that row's prediction id, so the log writes
one row per model version per flush however many requests it holds, and a prediction is still
found from its id alone. The log thread seals the open chunks every `flush_seconds` (or once
`batch_size` rows wait), serialises each (float matrices as raw bytes, strings as JSON) and
hands them to its writer: by default a session of the API's database (binary COPY on
PostgreSQL); on PostgreSQL the app uses `registry.predlog.process.ProcessWriter`, whose child
process runs the COPY so that it never holds this process's GIL. A failed write keeps the
chunks for the next try, which first skips the chunks found written (the write committed but
its answer was lost) and those of models deleted since they were served (they can never be
written). When `limit` rows wait (the database has been down for long), predict
answers 503 rather than serving predictions that could never be labelled.

By default a request is answered before its rows are written: a crash of the process loses
what the buffer holds, the predictions of the last `flush_seconds` and of the write in
progress (more while the database is slow or down). With `durable`, predict answers only once
its rows are committed (`written`), and the writer writes as soon as a row waits instead of on
its timer: what arrives while one write is in progress is sealed into the next, so concurrent
requests share one commit (a group commit) and a lone request waits for one. A request whose
rows are not committed within `wait_seconds` is answered 503 (LogNotDurable); its rows may
still be written later, but no one was given their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson

from api.champions import MISSING_CATEGORY, Columns
from registry.db import Database
from registry.predlog.ids import BATCH_ID_LENGTH, new_batch_id, prediction_ids
from registry.predlog.record import LoggedBatch
from registry.predlog.write import BatchWriter, SessionWriter, logged_batch_ids, models_kept

log = logging.getLogger(__name__)


class LogOverloaded(RuntimeError):
    """The buffer is full; the database is not keeping up or is down."""


class LogNotDurable(RuntimeError):
    """Durable mode: a request's predictions were not committed in time; the database is slow
    or down."""


@dataclass(frozen=True)
class Part:
    """What one request served, as the request left it."""

    columns: Columns
    labels: np.ndarray
    proba: np.ndarray | None


class Chunk:
    """Consecutive requests of one model version, logged as one row; owned by PredictionLog,
    which appends under its lock until it seals the chunk for writing."""

    __slots__ = ("id", "model_id", "opened_at", "parts", "rows", "version", "waiters")

    def __init__(self, model_id: int, version: int) -> None:
        self.id = new_batch_id()
        self.model_id, self.version = model_id, version
        self.opened_at = time.time()
        self.rows = 0
        self.parts: list[Part] = []
        # Durable mode: what requests await the write of this chunk, each on its event loop;
        # appended under the log's lock while the chunk is not yet written.
        self.waiters: list[asyncio.Future[None]] = []

    def record(self) -> LoggedBatch:
        """The chunk in the log's storage form: one matrix per kind of value for all its rows,
        the float matrices as each request's bytes in order, joined by the writer if at all."""
        parts = self.parts
        categorical = None
        if parts[0].columns.categorical:
            categorical = orjson.dumps(
                {
                    name: [
                        None if v == MISSING_CATEGORY else v
                        for v in np.concatenate([p.columns.categorical[name] for p in parts])
                    ]
                    for name in parts[0].columns.categorical
                }
            )
        labels = np.concatenate([p.labels for p in parts]).tolist()
        probas = [_float32_bytes(p.proba) for p in parts if p.proba is not None]  # all or none
        return LoggedBatch(
            id=self.id,
            model_id=self.model_id,
            version=self.version,
            created_at=datetime.fromtimestamp(self.opened_at, UTC),
            rows=self.rows,
            numeric=[_float32_bytes(p.columns.numeric) for p in parts],
            categorical=categorical,
            labels=orjson.dumps(labels),
            probabilities=probas or None,
        )


def _float32_bytes(matrix: np.ndarray) -> memoryview:
    """The matrix's little-endian float32 bytes, without a copy when it already is one."""
    return np.ascontiguousarray(matrix, dtype="<f4").data.cast("B")


class PredictionLog:
    """The API process's buffer of served predictions and the thread that writes it."""

    def __init__(
        self,
        db: Database,
        *,
        flush_seconds: float,
        batch_size: int,
        limit: int,
        writer: BatchWriter | None = None,
        durable: bool = False,
        wait_seconds: float = 2.0,
    ) -> None:
        self._db = db
        self._writer = writer or SessionWriter(db)
        self._flush_seconds, self._batch_size, self._limit = flush_seconds, batch_size, limit
        self._durable, self._wait_seconds = durable, wait_seconds
        # Rows waiting at which `add` wakes the writer and the writer does not wait for its
        # timer: a full batch, or in durable mode any row.
        self._wake_at = 1 if durable else batch_size
        self._failing_since: float | None = None  # monotonic time of the first failed write
        self._cond = threading.Condition()
        self._open: dict[tuple[int, int], Chunk] = {}  # by (model id, version)
        self._sealed: deque[Chunk] = deque()  # written in this order
        self._pending = 0  # rows waiting, open or sealed
        self._sealed_count = 0  # chunks ever sealed
        self._written_count = 0  # chunks ever written
        self._stop = False
        self._urgent = False  # a flush() waits: write without waiting for a full batch
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.enabled = True

    def start(self) -> None:
        self._thread.start()

    def pending(self) -> int:
        return self._pending

    def add(
        self,
        model_id: int,
        version: int,
        columns: Columns,
        labels: np.ndarray,
        proba: np.ndarray | None,
    ) -> list[str]:
        """Queue what a request served; the prediction ids of its rows."""
        n = columns.n
        if not self.enabled:  # nothing will be looked up: ids need only be unique
            return prediction_ids(new_batch_id(), n)
        with self._cond:
            if self._pending + n > self._limit:
                raise LogOverloaded(f"{self._pending} predictions wait to be logged")
            key = (model_id, version)
            chunk = self._open.get(key)
            if chunk is None:
                chunk = self._open[key] = Chunk(model_id, version)
            first = chunk.rows
            chunk.parts.append(Part(columns, labels, proba))
            chunk.rows += n
            self._pending += n
            if chunk.rows >= self._batch_size:
                self._seal(key)
            if self._pending >= self._wake_at:
                self._cond.notify_all()
        return prediction_ids(chunk.id, n, first)

    def holds(self, ids: Iterable[str]) -> set[str]:
        """Which of these prediction ids wait in this buffer, not yet written (or being
        written)."""
        with self._cond:
            chunks = {chunk.id for chunk in self._open.values()}
            chunks.update(chunk.id for chunk in self._sealed)
        if not chunks:
            return set()
        return {pid for pid in ids if pid[:BATCH_ID_LENGTH] in chunks}

    async def written(self, ids: list[str]) -> None:
        """Durable mode: return once the rows of these ids (from one `add`) are committed;
        LogNotDurable after `wait_seconds`, or at once while writes have been failing for
        longer than that. Awaited on the event loop, which no write ever blocks: the writer
        settles the waiting requests of each write with one callback on their loop."""
        if not ids:
            return
        batch_id = ids[0][:BATCH_ID_LENGTH]
        failing = self._failing_since
        if failing is not None and time.monotonic() - failing > self._wait_seconds:
            raise LogNotDurable(
                f"writing the prediction log has failed for {time.monotonic() - failing:.0f} s"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            chunk = self._unwritten(batch_id)
            if chunk is None:  # written already (or never logged: the log is off)
                return
            chunk.waiters.append(future)
        timer = loop.call_later(self._wait_seconds, self._expire, future)
        try:
            await future
        finally:
            timer.cancel()

    def _unwritten(self, batch_id: str) -> Chunk | None:
        """The chunk of this id still to be written, open or sealed (under the lock); the
        newest are looked at first."""
        for chunk in self._open.values():
            if chunk.id == batch_id:
                return chunk
        for chunk in reversed(self._sealed):
            if chunk.id == batch_id:
                return chunk
        return None

    def _expire(self, future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_exception(
                LogNotDurable(f"the prediction log was not written within {self._wait_seconds:g} s")
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row added before this call is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._seal_all()
            target = self._sealed_count
            self._urgent = True
            self._cond.notify_all()
            while self._written_count < target:
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
        if not self._thread.is_alive():  # else the thread may still be writing
            self._writer.close()

    def _seal(self, key: tuple[int, int]) -> None:
        self._sealed.append(self._open.pop(key))
        self._sealed_count += 1

    def _seal_all(self) -> None:
        for key in list(self._open):
            self._seal(key)

    def _write(self, take: list[Chunk], *, retry: bool) -> None:
        """Write the chunks; a retry first drops those that the failed write committed, and
        those of deleted models, whose rows the database refuses."""
        if retry:
            with self._db.session() as s:
                done = logged_batch_ids(s, [chunk.id for chunk in take])
                kept = models_kept(s, {chunk.model_id for chunk in take})
            orphans = sum(chunk.rows for chunk in take if chunk.model_id not in kept)
            if orphans:
                log.warning("dropping %d predictions of deleted models from the log", orphans)
            take = [chunk for chunk in take if chunk.id not in done and chunk.model_id in kept]
        self._writer.write([chunk.record() for chunk in take])

    def _run(self) -> None:
        failed = False  # the last write raised: it may still have committed
        if self._durable:  # the first request should not wait for the writer to start
            try:
                self._writer.open()
            except Exception:
                log.exception("starting the prediction log's writer failed; will retry")
        while True:
            with self._cond:
                if self._pending < self._wake_at and not (self._urgent or self._stop):
                    self._cond.wait(self._flush_seconds)
                self._seal_all()
                if not self._sealed:
                    self._urgent = False
                    if self._stop:
                        return
                    continue
                take: list[Chunk] = []
                rows = 0
                for chunk in self._sealed:
                    if take and rows + chunk.rows > self._batch_size:
                        break
                    take.append(chunk)
                    rows += chunk.rows
            try:
                self._write(take, retry=failed)
                failed = False
                self._failing_since = None
            except Exception:
                log.exception("writing %d predictions failed; will retry", rows)
                failed = True
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                time.sleep(self._flush_seconds)
                continue
            with self._cond:
                for _ in take:
                    self._sealed.popleft()
                self._pending -= rows
                self._written_count += len(take)
                self._cond.notify_all()
                # No waiter joins a chunk once it has left the deque.
                waiters = [future for chunk in take for future in chunk.waiters]
            if waiters:
                _settle(waiters)


def _settle(waiters: list[asyncio.Future[None]]) -> None:
    """Tell the requests awaiting a write that it committed: one callback per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for future in waiters:
        by_loop.setdefault(future.get_loop(), []).append(future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: no request awaits any more
            loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # else it expired, or its request was cancelled
            future.set_result(None)
