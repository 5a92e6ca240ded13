"""Warm start: continue the champion's estimator on rows it has not seen.

Only estimators with ``partial_fit`` (SGD, MLP) qualify. The fitted preprocessing is kept as
it is (its imputation values, scaling and categories stay those of the champion); the
estimator alone continues, with ``classes=`` its own classes. How many epochs is validated:
a probe copy continues on the new rows before the validation split and is scored after each
of EPOCH_CHECKPOINTS (an MLP needs ~40 epochs of a few hundred rows to follow a real drift,
SGD a handful); the final copy then runs the best count on every new row.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline

from tuning.fitting import quiet, validation_score
from tuning.metrics import greater_is_better
from tuning.spec import ModelSpec
from tuning.state import Trial

EPOCH_CHECKPOINTS = (5, 10, 20, 40)
MAX_ROW_PASSES = 400_000  # epochs x new rows allowed beyond the first checkpoint
_FAMILIES = {SGDClassifier: "sgd", SGDRegressor: "sgd", MLPClassifier: "mlp", MLPRegressor: "mlp"}


@dataclass(frozen=True)
class WarmResult:
    """The champion continued on rows [start, end), scored on the validation rows."""

    pipeline: Pipeline
    config: dict[str, Any]
    rows: tuple[int, int]
    validation_score: float


def warm_family(pipeline: Pipeline) -> str | None:
    """ "sgd" or "mlp" when the final estimator can continue with partial_fit, else None."""
    return _FAMILIES.get(type(pipeline[-1]))


def continue_training(
    pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, *, epochs: int, copy_first: bool = True
) -> Pipeline:
    """``pipeline`` (a deep copy unless copy_first=False) after ``epochs`` partial_fit passes."""
    pipe = copy.deepcopy(pipeline) if copy_first else pipeline
    if len(X) == 0 or epochs <= 0:
        return pipe
    estimator = pipe[-1]
    kwargs = {"classes": estimator.classes_} if hasattr(estimator, "classes_") else {}
    with quiet():
        Xt = pipe[:-1].transform(X)
        for _ in range(epochs):
            estimator.partial_fit(Xt, y, **kwargs)
    return pipe


def _checkpoints(new_rows: int) -> list[int]:
    return [
        e for e in EPOCH_CHECKPOINTS if e == EPOCH_CHECKPOINTS[0] or e * new_rows <= MAX_ROW_PASSES
    ]


def _probe(
    metric: str, champion: Pipeline, X: pd.DataFrame, y: np.ndarray, n_train: int, start: int
) -> list[tuple[int, float]]:
    """Validation score after each epoch checkpoint of a copy continued on [start, n_train)."""
    X_val, y_val = X.iloc[n_train:], y[n_train:]
    if start >= n_train:  # no new rows before validation: the probe is the champion itself
        return [(0, validation_score(metric, champion, X_val, y_val))]
    pipe, done, scores = copy.deepcopy(champion), 0, []
    for epochs in _checkpoints(n_train - start):
        X_new, y_new = X.iloc[start:n_train], y[start:n_train]
        continue_training(pipe, X_new, y_new, epochs=epochs - done, copy_first=False)
        done = epochs
        scores.append((epochs, validation_score(metric, pipe, X_val, y_val)))
    return scores


def _skip_reason(
    spec: ModelSpec, champion: Pipeline, y: np.ndarray, new_start: int, n_train: int
) -> str | None:
    if warm_family(champion) is None:
        return f"{type(champion[-1]).__name__} has no partial_fit"
    if new_start > n_train:
        return f"champion trained on rows up to {new_start}, past the validation start {n_train}"
    if new_start >= len(y):
        return "no new rows since the champion was trained"
    if spec.task == "classification":
        unseen = sorted(set(y[new_start:]) - {str(c) for c in champion[-1].classes_})
        if unseen:
            return f"new rows have classes the champion never saw: {unseen[:5]}"
    return None


def warm_start(
    spec: ModelSpec,
    champion: Pipeline,
    X: pd.DataFrame,
    y: np.ndarray,
    champion_rows_end: int | None,
    n_train: int,
    *,
    metric: str,
    trials: list[Trial],
) -> WarmResult | None:
    """Validate a continued copy on the new rows before ``n_train``, then continue another copy
    on every new row (validation included). None, with a trial saying why, when not possible.
    """
    n, new_start = len(X), champion_rows_end or 0
    family = warm_family(champion)
    reason = _skip_reason(spec, champion, y, new_start, n_train)
    if reason is not None:
        skipped = {"family": family, "continued_from": "champion"}
        trials.append(Trial(kind="warm_start", stage="skipped", config=skipped, note=reason))
        return None
    sign = 1.0 if greater_is_better(metric) else -1.0
    t0 = time.monotonic()
    try:
        scores = _probe(metric, champion, X, y, n_train, new_start)
        for epochs, value in scores:
            trials.append(
                Trial(
                    kind="warm_start",
                    stage="validation",
                    config={"family": family, "continued_from": "champion", "epochs": epochs},
                    rows=[new_start, n_train],
                    validation_score=value,
                    seconds=round(time.monotonic() - t0, 3),
                )
            )
        epochs, score = max(scores, key=lambda es: (sign * es[1], -es[0]))
        epochs = epochs or EPOCH_CHECKPOINTS[0]
        config: dict[str, Any] = {"family": family, "continued_from": "champion", "epochs": epochs}
        t0 = time.monotonic()
        final = continue_training(champion, X.iloc[new_start:n], y[new_start:n], epochs=epochs)
    except Exception as exc:  # the champion may not fit this data; the refit still stands
        error = f"{type(exc).__name__}: {exc}"
        trials.append(Trial(kind="warm_start", stage="failed", error=error))
        return None
    trials.append(
        Trial(
            kind="warm_start",
            stage="final",
            config=config,
            rows=[new_start, n],
            validation_score=score,
            seconds=round(time.monotonic() - t0, 3),
        )
    )
    return WarmResult(final, config, (new_start, n), score)
