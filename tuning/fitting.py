"""Fitting and scoring helpers shared by the refit search and the warm start."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from tuning import metrics
from tuning.export import predict_sklearn


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings short search budgets cause on purpose.

    ConvergenceWarning (MLP/SGD/saga stop at a modest max_iter), constant-feature and
    divide warnings from univariate selection on one-hot columns.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def fit_quietly(pipe: Pipeline, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """Fit a pipeline inside ``quiet()``; returns it fitted."""
    with quiet():
        return pipe.fit(X, y)


def validation_score(metric: str, pipe: Pipeline, X: pd.DataFrame, y: np.ndarray) -> float:
    """The metric of a fitted pipeline on validation rows; non-finite output raises ValueError."""
    with quiet():
        pred = predict_sklearn(pipe, X)
    if pred.labels.dtype.kind == "f" and not np.all(np.isfinite(pred.labels)):
        raise ValueError("non-finite predictions")
    if pred.proba is not None and not np.all(np.isfinite(pred.proba)):
        raise ValueError("non-finite probabilities")
    value = metrics.score(metric, y, pred)
    if not math.isfinite(value):
        raise ValueError(f"non-finite {metric}")
    return value
