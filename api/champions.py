"""The in-memory champions and their hot swap.

Each replica keeps one immutable `LoadedModel` per model name in a dict that is replaced, never
mutated: a request takes a reference to an entry and finishes on it even if a promotion swaps
the dict meanwhile. A new champion is loaded and checked before it is published, so a swap
leaves no gap. Replicas follow the champion pointer in the database by polling it, and learn
every model's name on the way: a request for a model that is not loaded is answered from memory
(not found, or not ready) without a query on the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import onnxruntime as ort
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry import catalog
from registry.db import Database
from registry.errors import CorruptArtifact, NotFound, excerpt
from tuning.labels import MISSING as MISSING_CATEGORY  # how a missing category reaches a graph
from tuning.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Columns:
    """Validated inputs in a model's layout, as both the graph and the prediction log take them.

    `numeric` is one float32 matrix [n, len(model.numeric)] (NaN for missing), the values the
    graph sees; `categorical` holds an object array [n] of strings per categorical feature, with
    MISSING_CATEGORY for missing ones.
    """

    n: int
    numeric: np.ndarray
    categorical: dict[str, np.ndarray]


class ModelNotReady(LookupError):
    """The model exists but this replica serves no champion of it (yet); the message says
    why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """One champion ready to serve: its ONNX session and what is needed to read its output."""

    name: str
    model_id: int
    version: int
    sha256: str
    spec: ModelSpec
    classes: list[str] | None
    session: ort.InferenceSession
    names: tuple[str, ...] = ()  # the spec's features, precomputed for the request path
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric_at: tuple[int, ...] = ()
    categorical_at: tuple[int, ...] = ()
    offload_rows: int = 1  # calls on this many rows or more are worth a hop to a thread

    def run(self, columns: Columns) -> tuple[np.ndarray, np.ndarray | None]:
        """One ONNX call on validated columns: labels (str) or values (float), and the class
        probabilities of a classifier (columns in the order of `classes`)."""
        feeds = self.feeds(columns)
        if self.spec.task == "regression":
            (values,) = _run(self.session, ["variable"], feeds)
            return values.reshape(-1), None
        labels, proba = _run(self.session, ["label", "probabilities"], feeds)
        return labels.reshape(-1), proba

    def feeds(self, columns: Columns) -> dict[str, np.ndarray]:
        """The graph's inputs (one [n, 1] tensor per feature), as contiguous views."""
        by_feature = np.ascontiguousarray(columns.numeric.T).reshape(len(self.numeric), -1, 1)
        feeds = dict(zip(self.numeric, by_feature, strict=True))
        for name, values in columns.categorical.items():
            feeds[name] = values.reshape(-1, 1)
        return feeds


def _run(session: ort.InferenceSession, outputs: list[str], feeds: dict[str, np.ndarray]) -> list:
    """`session.run` without its Python-side checks when the session's C++ object is there.

    The wrapper looks every graph input up in a list of the feed's names, which is quadratic
    in the inputs and, with one input per feature, a visible part of a single-row call;
    `feeds` here always holds exactly the graph's inputs, built from the model's own names, so
    the check could never fail.
    """
    inner = getattr(session, "_sess", None)
    if inner is None:
        return session.run(outputs, feeds)
    return inner.run(outputs, feeds, None)


def load_model(
    name: str,
    model_id: int,
    version: int,
    spec: ModelSpec,
    classes: list[str] | None,
    onnx: bytes,
    sha256: str,
    threads: int,
    inline_seconds: float = 0.001,
) -> LoadedModel:
    """A session for the artifact, checked against its sha256 and timed on a dummy batch so
    that requests know from how many rows its calls outlast `inline_seconds`."""
    if hashlib.sha256(onnx).hexdigest() != sha256:
        raise CorruptArtifact(f"{name} v{version}: artifact does not match its sha256")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    kinds = [f.type for f in spec.features]
    model = LoadedModel(
        name,
        model_id,
        version,
        sha256,
        spec,
        classes,
        session,
        names=tuple(spec.feature_names),
        numeric=tuple(spec.numeric_features),
        categorical=tuple(spec.categorical_features),
        numeric_at=tuple(i for i, k in enumerate(kinds) if k == "numeric"),
        categorical_at=tuple(i for i, k in enumerate(kinds) if k == "categorical"),
    )
    per_row = _seconds_per_row(model)
    return replace(model, offload_rows=max(1, int(inline_seconds / per_row)))


def _seconds_per_row(model: LoadedModel, rows: int = 256) -> float:
    """The fastest of a few calls on `rows` rows of zeros and missing categories, per row."""
    dummy = Columns(
        rows,
        np.zeros((rows, len(model.numeric)), dtype=np.float32),
        {name: np.full(rows, MISSING_CATEGORY, dtype=object) for name in model.categorical},
    )
    for _ in range(3):  # the first calls allocate and warm the caches
        model.run(dummy)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        model.run(dummy)
        best = min(best, time.perf_counter() - started)
    return max(best / rows, 1e-9)


@dataclass(frozen=True)
class LoadFailure:
    """A champion whose artifact would not load on this replica, and why."""

    version: int
    sha256: str
    reason: str
    at: float  # time.monotonic() of the last attempt


RETRY_FAILED_SECONDS = 60.0  # a champion that would not load is tried again after this long


class ModelCache:
    """The champions this replica serves; refreshed from the registry by a poller thread."""

    def __init__(
        self,
        db: Database,
        *,
        threads: int = 1,
        inline_seconds: float = 0.001,
    ) -> None:
        self._db, self._threads = db, threads
        self._inline_seconds = inline_seconds
        self._models: dict[str, LoadedModel] = {}
        self._names: frozenset[str] = frozenset()  # every registered model, as of the last poll
        self._failed: dict[str, LoadFailure] = {}  # champions that would not load, by model
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.loaded_once = threading.Event()

    def get(self, name: str) -> LoadedModel:
        """The champion served for `name`; NotFound or ModelNotReady, from memory alone."""
        model = self._models.get(name)
        if model is None:
            raise self._missing(name)
        return model

    def _missing(self, name: str) -> Exception:
        if not self.loaded_once.is_set():
            return ModelNotReady(  # the first poll failed: the database is the usual cause
                "this replica could not load the champions yet; the database may be "
                "unreachable: check LOOPSERVE_DATABASE_URL and that the database is up (see "
                "/readyz), then retry"
            )
        if name not in self._names:
            return NotFound(f"model {excerpt(name)} not found")
        failure = self._failed.get(name)
        if failure is not None:
            return ModelNotReady(
                f"model {name}: the ONNX artifact of its champion v{failure.version} failed to "
                f"load on this replica ({failure.reason}); promote another version (POST "
                f"/v1/admin/models/{name}/promote), roll back (POST "
                f"/v1/admin/models/{name}/rollback) or retrain it (POST "
                f"/v1/admin/models/{name}/retrain)"
            )
        return ModelNotReady(
            f"model {name} has no champion loaded yet: upload labelled data and retrain it "
            f"(POST /v1/admin/models/{name}/retrain), then retry"
        )

    def versions(self) -> dict[str, int]:
        return {name: m.version for name, m in self._models.items()}

    def not_ready(self) -> dict[str, str]:
        """Per model whose champion would not load: which one, why, and what is served
        instead. Other models are served as usual, so this makes no replica unready."""
        models = self._models
        out = {}
        for name, failure in self._failed.items():
            served = models.get(name)
            instead = f"still serving v{served.version}" if served else "serving no version"
            out[name] = (
                f"the ONNX artifact of champion v{failure.version} failed to load "
                f"({failure.reason}); {instead}"
            )
        return out

    def refresh(self) -> list[LoadedModel]:
        """Load every champion whose pointer moved; publish them in one swap.

        A champion is its version, not only its artifact: a promoted version whose bytes are
        those served reuses the loaded session under its own number, which every answer then
        gives. A champion that will not load is logged once and tried again after
        RETRY_FAILED_SECONDS, not at every poll; what was served before stays served. Database
        errors end the refresh (the poller retries); anything else is the artifact's.
        """
        with self._refresh_lock:
            current, known = self._models, self._failed
            now = time.monotonic()
            fresh: list[LoadedModel] = []
            failed: dict[str, LoadFailure] = {}
            with self._db.session() as s:
                pointers = catalog.champion_pointers(s)
                names = catalog.model_names(s)
                for name, (version, sha) in pointers.items():
                    served = current.get(name)
                    if served is not None and served.sha256 == sha:
                        if served.version != version:
                            fresh.append(replace(served, version=version))
                        continue
                    before = known.get(name)
                    again = before is not None and (before.version, before.sha256) == (version, sha)
                    if before is not None and again and now - before.at < RETRY_FAILED_SECONDS:
                        failed[name] = before
                        continue
                    try:
                        fresh.append(self._load(s, name, version, sha))
                    except SQLAlchemyError:
                        raise
                    except Exception as exc:  # corrupt bytes, or a graph onnxruntime refuses
                        failed[name] = LoadFailure(version, sha, catalog.unusable(exc), now)
                        if not again:
                            _log_failure(name, failed[name], served, exc)
            if fresh or set(current) - set(pointers):
                updated = {n: m for n, m in current.items() if n in pointers}
                updated.update({m.name: m for m in fresh})
                self._models = updated
                for m in fresh:
                    log.info("serving %s v%s", m.name, m.version)
            self._names = frozenset(names)  # after the swap: a name is never missed early
            self._failed = failed
            self.loaded_once.set()
            return fresh

    def _load(self, s: Session, name: str, version: int, sha: str) -> LoadedModel:
        model = catalog.get_model(s, name)
        row = catalog.get_version(s, model, version)
        return load_model(
            name,
            model.id,
            version,
            catalog.spec_of(model),
            row.classes,
            catalog.get_artifact(s, sha),
            sha,
            self._threads,
            self._inline_seconds,
        )

    def start(self, period: float) -> None:
        self._thread = threading.Thread(
            target=self._poll, args=(period,), name="champion-poller", daemon=True
        )
        self._thread.start()

    def wake(self, _model: str | None = None) -> None:
        """Refresh now (a champion changed somewhere), not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _poll(self, period: float) -> None:
        while True:
            try:
                self.refresh()
            except Exception:
                log.exception("champion refresh failed; serving what is loaded")
            self._wake.wait(period)
            self._wake.clear()
            if self._stop.is_set():
                return


def _log_failure(
    name: str, failure: LoadFailure, served: LoadedModel | None, exc: Exception
) -> None:
    """Once per champion: which, why, and what is served instead (a traceback only when
    the cause is not a known state of the artifact)."""
    instead = f"still serving v{served.version}" if served else "serving no version of it"
    log.error(
        "%s v%s: its ONNX artifact %s failed to load (%s); %s",
        name,
        failure.version,
        failure.sha256,
        failure.reason,
        instead,
        exc_info=None if isinstance(exc, CorruptArtifact) else exc,
    )
