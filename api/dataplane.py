"""The serving path every protocol shares: pick the served model, run one ONNX call on
validated columns, give every row a prediction id, and log it off the request path.

The v1 predict decodes JSON rows into columns (api.codec), the Open Inference Protocol's infer
decodes tensors (api.oip); both hand the columns here and encode what comes back. Nothing here
touches the database on the request: models come from the cache, the log is written by its
own thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from api.champions import Columns, LoadedModel, ModelCache, ModelNotReady
from api.predlog import PredictionLog
from registry.errors import excerpt


class BatchTooLarge(ValueError):
    """A request holds more rows than LOOPSERVE_MAX_BATCH_ROWS."""


class VersionNotServed(LookupError):
    """A version was asked for that this replica does not serve (only champions are loaded)."""


def parse_version(version: str | None) -> int | None:
    """The version of a `/versions/{v}` path; VersionNotServed when it is not a number."""
    if version is None:
        return None
    if not version.isdigit():
        raise VersionNotServed(f"version {excerpt(version)} is not a version number")
    return int(version)


@dataclass(frozen=True)
class Served:
    model: LoadedModel
    ids: list[str]
    labels: np.ndarray
    proba: np.ndarray | None


class DataPlane:
    def __init__(self, cache: ModelCache, log: PredictionLog, *, max_batch_rows: int) -> None:
        self.cache, self.log = cache, log
        self.max_batch_rows = max_batch_rows

    def model(self, name: str, version: int | None = None) -> LoadedModel:
        """The served champion, from memory: NotFound for an unknown model, ModelNotReady
        without a loaded champion, VersionNotServed when another version was asked for."""
        model = self.cache.get(name)
        if version is not None and version != model.version:
            raise VersionNotServed(f"model {name} serves version {model.version}, not {version}")
        return model

    def loaded(self) -> bool:
        """Whether this replica loaded the champions at least once."""
        return self.cache.loaded_once.is_set()

    def ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model's champion (of the version of a `/versions/{v}` path) is served
        here; NotFound for an unknown model, whatever the version."""
        try:
            served = self.model(name)
            return version is None or parse_version(version) == served.version
        except (ModelNotReady, VersionNotServed):
            return False

    def check_size(self, n: int) -> None:
        if n > self.max_batch_rows:
            raise BatchTooLarge(
                f"{n} rows exceed the limit of {self.max_batch_rows} rows per request"
            )

    def infer(self, model: LoadedModel, columns: Columns) -> Served:
        labels, proba = model.run(columns)
        ids = self.log.add(model.model_id, model.version, columns, labels, proba)
        return Served(model, ids, labels, proba)

    def infer_many(self, model: LoadedModel, parts: list[Columns]) -> list[Served]:
        """infer for several requests in one ONNX call and one log entry; each request gets
        its own rows back."""
        if len(parts) == 1:
            return [self.infer(model, parts[0])]
        merged = Columns(
            sum(p.n for p in parts),
            np.concatenate([p.numeric for p in parts]),
            {
                name: np.concatenate([p.categorical[name] for p in parts])
                for name in parts[0].categorical
            },
        )
        whole = self.infer(model, merged)
        out, start = [], 0
        for part in parts:
            end = start + part.n
            proba = None if whole.proba is None else whole.proba[start:end]
            out.append(Served(model, whole.ids[start:end], whole.labels[start:end], proba))
            start = end
        return out
