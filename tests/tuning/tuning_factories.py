"""Small factories for tuning tests: specs and frames with categoricals and missing values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification, make_regression

from tuning import data
from tuning.spec import ModelSpec

CATEGORIES = ("north", "south", "east", "west")


def make_spec(
    task: str = "classification",
    *,
    n_numeric: int = 4,
    metric: str | None = None,
    retrain: dict[str, Any] | None = None,
    promotion: dict[str, Any] | None = None,
) -> ModelSpec:
    """A spec with n_numeric numeric features x0.. and one categorical "region"."""
    features = [{"name": f"x{j}", "type": "numeric"} for j in range(n_numeric)]
    features.append({"name": "region", "type": "categorical"})
    body: dict[str, Any] = {
        "name": "m",
        "task": task,
        "target": "y",
        "features": features,
        "retrain": {"max_candidates": 4, "max_seconds": 60, **(retrain or {})},
        "promotion": promotion or {},
    }
    if metric is not None:
        body["metric"] = metric
    return ModelSpec.model_validate(body)


def make_rows(
    spec: ModelSpec,
    n: int,
    *,
    seed: int = 0,
    n_classes: int = 2,
    missing: float = 0.1,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Dict rows and raw targets; "region" carries signal, values go missing at rate ``missing``.

    Classification targets are ints (the platform normalises them to "0", "1", ...).
    """
    rng = np.random.default_rng(seed)
    k = len(spec.numeric_features)
    if spec.task == "classification":
        X, y = make_classification(
            n,
            k + 1,
            n_informative=min(k + 1, 4),
            n_redundant=0,
            n_classes=n_classes,
            n_clusters_per_class=1,
            random_state=seed,
        )
        targets: list[Any] = [int(v) for v in y]
    else:
        X, y = make_regression(n, k + 1, n_informative=min(k + 1, 4), noise=5.0, random_state=seed)
        targets = [float(v) for v in 3 * y + 50]
    bins = np.digitize(X[:, k], np.quantile(X[:, k], [0.25, 0.5, 0.75]))
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            name: None if rng.random() < missing else float(X[i, j])
            for j, name in enumerate(spec.numeric_features)
        }
        row["region"] = None if rng.random() < missing else CATEGORIES[int(bins[i])]
        rows.append(row)
    return rows, targets


def make_data(spec: ModelSpec, n: int, **kwargs: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """A feature frame and normalised targets (see make_rows)."""
    rows, targets = make_rows(spec, n, **kwargs)
    return data.frame(spec, rows), data.target(spec, targets)


def drifting_data(
    spec: ModelSpec, n: int, *, drift_at: int, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Binary rows whose concept flips at ``drift_at``: y = x0 + x1 > 0, then x0 - x1 > 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(spec.numeric_features)))
    before = X[:, 0] + X[:, 1] > 0
    after = X[:, 0] - X[:, 1] > 0
    y = np.where(np.arange(n) < drift_at, before, after)
    if spec.task == "regression":
        values = np.where(np.arange(n) < drift_at, X[:, 0] + X[:, 1], X[:, 0] - X[:, 1]) * 10
        targets: list[Any] = list(values)
    else:
        targets = [int(v) for v in y]
    rows = [
        {
            **{name: float(X[i, j]) for j, name in enumerate(spec.numeric_features)},
            "region": CATEGORIES[i % 4],
        }
        for i in range(n)
    ]
    return data.frame(spec, rows), data.target(spec, targets)
