"""The baselines loopserve is compared with, test-then-train on exactly the loop's rows.

Every learner fits the initial rows, then meets the stream in the loop's batches of 100: it
predicts a batch and only then learns that batch's labels, as loopserve's clients do. The
scikit-learn ones are what a team without loopserve would run (fit once, or refit on a
calendar); river's adaptive forest and tree are the online-learning state of the art. On a
stream with an abrupt change one more learner runs as a reference, not a baseline: it is told
where the change is and refits on the rows since it (OracleLearner), so its recovery is what
the new concept allows this pipeline when no time is lost finding the change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from river import compose, forest, preprocessing, tree
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bench.drift.streams import Row, Stream

BATCH = 100
SEED = 42
REFIT_EVERY, REFIT_WINDOW = 2000, 6000
ORACLE = "oracle_refit"  # a reference: it knows the change point (see OracleLearner)
ORACLE_DENSE_ROWS = 5000  # the oracle refits after every batch this long after the change


class Learner(Protocol):
    def fit(self, rows: list[Row]) -> None: ...
    def predict(self, xs: list[Row]) -> list[Any]: ...
    def learn(self, rows: list[Row]) -> None: ...


def sklearn_pipeline(stream: Stream) -> Pipeline:
    """Impute, one-hot and scale, then histogram gradient boosting with its defaults."""
    numeric = [n for n, t in stream.features.items() if t == "numeric"]
    categorical = [n for n, t in stream.features.items() if t == "categorical"]
    parts = [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)]
    if categorical:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), onehot), categorical)
        )
    model = (
        HistGradientBoostingClassifier(random_state=SEED)
        if stream.task == "classification"
        else HistGradientBoostingRegressor(random_state=SEED)
    )
    return Pipeline([("prep", ColumnTransformer(parts)), ("model", model)])


@dataclass
class SklearnLearner:
    """The pipeline fitted on the initial rows; with `refit_every`, refitted after every
    `refit_every` stream rows on the newest `window` labelled rows."""

    stream: Stream
    refit_every: int | None = None
    window: int = REFIT_WINDOW
    history: list[Row] = field(default_factory=list)
    since_fit: int = 0
    pipeline: Pipeline | None = None

    def _frame(self, rows: list[Row]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=list(self.stream.features))

    def _fit(self, rows: list[Row]) -> None:
        target = self.stream.target
        self.pipeline = sklearn_pipeline(self.stream).fit(
            self._frame(rows), [r[target] for r in rows]
        )
        self.since_fit = 0

    def fit(self, rows: list[Row]) -> None:
        self.history = list(rows)
        self._fit(rows)

    def predict(self, xs: list[Row]) -> list[Any]:
        assert self.pipeline is not None
        return self.pipeline.predict(self._frame(xs)).tolist()

    def learn(self, rows: list[Row]) -> None:
        if self.refit_every is None:
            return
        self.history.extend(rows)
        self.since_fit += len(rows)
        if self.since_fit >= self.refit_every:
            self.history = self.history[-self.window :]
            self._fit(self.history)


@dataclass
class OracleLearner(SklearnLearner):
    """Periodic refit until the change; from `change` on (a stream row index, which it could
    not know in practice) the pipeline refitted after every batch on the rows since the change
    alone, every 1,000 rows after the first ORACLE_DENSE_ROWS."""

    change: int = 0
    seen: int = 0

    def learn(self, rows: list[Row]) -> None:
        self.seen += len(rows)
        if self.seen <= self.change:
            super().learn(rows)
            return
        self.history.extend(rows)
        fresh = self.seen - self.change
        if fresh >= BATCH and (fresh <= ORACLE_DENSE_ROWS or fresh % 1000 < len(rows)):
            self._fit(self.history[-fresh:])


@dataclass
class RiverLearner:
    """A river model behind river's usual preprocessing: numeric features standardised,
    categorical ones one-hot encoded, learned one row at a time."""

    stream: Stream
    make_model: Callable[[], Any]
    model: Any = None

    def __post_init__(self) -> None:
        numeric = [n for n, t in self.stream.features.items() if t == "numeric"]
        categorical = [n for n, t in self.stream.features.items() if t == "categorical"]
        prep = compose.Select(*numeric) | preprocessing.StandardScaler()
        if categorical:
            prep = prep + (compose.Select(*categorical) | preprocessing.OneHotEncoder())
        self.model = prep | self.make_model()

    def fit(self, rows: list[Row]) -> None:
        self.learn(rows)

    def predict(self, xs: list[Row]) -> list[Any]:
        return [self.model.predict_one(x) for x in xs]

    def learn(self, rows: list[Row]) -> None:
        target = self.stream.target
        for row in rows:
            self.model.learn_one(self.stream.x(row), row[target])


def learners(stream: Stream) -> dict[str, Callable[[], Learner]]:
    """Name -> factory of a fresh learner, in the report's order."""
    classify = stream.task == "classification"
    arf = forest.ARFClassifier if classify else forest.ARFRegressor
    hat = tree.HoeffdingAdaptiveTreeClassifier if classify else tree.HoeffdingAdaptiveTreeRegressor
    out: dict[str, Callable[[], Learner]] = {
        "static": lambda: SklearnLearner(stream),
        "periodic_refit": lambda: SklearnLearner(stream, refit_every=REFIT_EVERY),
        "river_arf": lambda: RiverLearner(stream, lambda: arf(seed=SEED)),
        "river_hat": lambda: RiverLearner(stream, lambda: hat(seed=SEED)),
    }
    if stream.changes and stream.changes[0].kind == "abrupt":
        at = stream.changes[0].start
        out[ORACLE] = lambda: OracleLearner(stream, refit_every=REFIT_EVERY, change=at)
    return out


def run(learner: Learner, stream: Stream, batch: int = BATCH) -> tuple[list[Any], float]:
    """Fit the initial rows, then predict each batch before learning it: (predictions, seconds)."""
    started = time.perf_counter()
    learner.fit(stream.initial)
    out: list[Any] = []
    for first in range(0, len(stream.rows), batch):
        rows = stream.rows[first : first + batch]
        out.extend(learner.predict([stream.x(r) for r in rows]))
        learner.learn(rows)
    return out, time.perf_counter() - started


def run_all(
    stream: Stream, names: list[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Every baseline on the stream, one after the other: {name: {"pred", "seconds"}}."""
    results = {}
    for name, factory in learners(stream).items():
        if names is not None and name not in names:
            continue
        pred, seconds = run(factory(), stream)
        if stream.task == "regression":
            pred = [None if p is None else float(p) for p in pred]
        results[name] = {"pred": pred, "seconds": seconds}
        log(f"  {name}: {seconds:.1f} s")
    return results
