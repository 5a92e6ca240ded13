"""Small factories for specs and rows shared by the tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from registry.models import utcnow
from registry.predlog.ids import new_batch_id
from registry.predlog.record import LoggedBatch
from tuning.spec import ModelSpec

COLORS = ("red", "green", "blue")


def churn_spec(name: str = "churn", **overrides: Any) -> ModelSpec:
    """A classifier over four numeric features and one categorical."""
    body: dict[str, Any] = {
        "name": name,
        "task": "classification",
        "target": "churned",
        "features": [
            {"name": "x1", "type": "numeric"},
            {"name": "x2", "type": "numeric"},
            {"name": "x3", "type": "numeric"},
            {"name": "x4", "type": "numeric"},
            {"name": "color", "type": "categorical"},
        ],
        "retrain": {
            "max_candidates": 4,
            "max_seconds": 30,
            "min_new_labels": None,
            "families": ["logistic", "sgd"],
            "windows": [None, 300],
        },
        "promotion": {"min_delta": 0.02, "min_holdout": 50},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return ModelSpec.model_validate(body)


def churn_rows(n: int, *, seed: int, flipped: bool = False) -> list[dict[str, Any]]:
    """Rows whose label is a clean linear concept; `flipped` reverses it (concept drift)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    colors = rng.choice(COLORS, size=n)
    shift = np.select([colors == "red", colors == "green"], [0.8, -0.8], 0.0)
    score = 2.0 * x[:, 0] - 1.5 * x[:, 1] + 0.5 * x[:, 2] + shift
    if flipped:
        score = -score
    noisy = score + rng.normal(scale=0.3, size=n)
    rows = []
    for i in range(n):
        rows.append(
            {
                "x1": float(x[i, 0]),
                "x2": float(x[i, 1]),
                "x3": None if i % 17 == 0 else float(x[i, 2]),
                "x4": float(x[i, 3]),
                "color": str(colors[i]),
                "churned": "yes" if noisy[i] > 0 else "no",
            }
        )
    return rows


def features_only(rows: list[dict[str, Any]], target: str = "churned") -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != target} for r in rows]


def logged_batch(
    model_id: int,
    spec: ModelSpec,
    rows: list[dict[str, Any]],
    *,
    version: int = 1,
    labels: list[Any] | None = None,
    probabilities: np.ndarray | None = None,
) -> LoggedBatch:
    """Feature rows as one logged batch, in the form the API's log thread writes (every answer
    "no" unless `labels` are given)."""
    numeric = np.array(
        [[np.nan if r[f] is None else r[f] for f in spec.numeric_features] for r in rows],
        dtype="<f4",
    ).reshape(len(rows), len(spec.numeric_features))
    categorical = {f: [r[f] for r in rows] for f in spec.categorical_features}
    return LoggedBatch(
        id=new_batch_id(),
        model_id=model_id,
        version=version,
        created_at=utcnow(),
        rows=len(rows),
        numeric=[numeric.tobytes()],
        categorical=orjson.dumps(categorical) if categorical else None,
        labels=orjson.dumps(labels if labels is not None else ["no"] * len(rows)),
        probabilities=None if probabilities is None else [probabilities.astype("<f4").tobytes()],
    )
