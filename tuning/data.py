"""The one shape of feature data every loopserve package hands to tuning/ and to ONNX.

A feature frame has exactly ``spec.feature_names`` columns, in spec order:

- numeric columns are float64, NaN where missing (imputed inside the pipeline and the ONNX graph);
- categorical columns are object dtype holding ``str`` only; a missing categorical (None, NaN,
  absent key) is replaced by the sentinel ``MISSING`` ("__missing__") here, before any model
  sees it. The pipeline then treats it as one more category, and ONNX receives the very same
  string, so sklearn and ONNX agree without a string imputer in the graph.

Classification targets are strings (1, 1.0 and "1" all become "1"); regression targets float64.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tuning.labels import MISSING, class_name
from tuning.spec import ModelSpec


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def category(value: Any) -> str:
    """Normalise one categorical value: missing -> MISSING; a number as a class name is spelled
    (1.0 -> "1", tuning.labels.class_name); anything else str()."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Real | np.bool_):
        return class_name(value)
    return str(value)


def _numeric(values: Iterable[Any], name: str) -> np.ndarray:
    out = []
    for i, v in enumerate(values):
        if _is_missing(v):
            out.append(math.nan)
            continue
        if isinstance(v, bool | np.bool_):
            raise ValueError(f"feature {name!r}, row {i}: expected a number, got a boolean")
        try:
            number = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"feature {name!r}, row {i}: expected a number, got {v!r}") from None
        if math.isinf(number):
            raise ValueError(f"feature {name!r}, row {i}: expected a finite number, got {v!r}")
        out.append(number)
    return np.asarray(out, dtype=np.float64)


def _categorical(values: Iterable[Any]) -> np.ndarray:
    return np.array([category(v) for v in values], dtype=object)


def frame(spec: ModelSpec, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Build the feature frame from dict rows; absent keys and None are missing values.

    Keys that are not features (the target, ids) are ignored.
    """
    columns: dict[str, Any] = {}
    for f in spec.features:
        values = [row.get(f.name) for row in rows]
        if f.type == "numeric":
            columns[f.name] = _numeric(values, f.name)
        else:
            columns[f.name] = pd.Series(_categorical(values), dtype=object)
    return pd.DataFrame(columns, columns=spec.feature_names)


def normalize(spec: ModelSpec, X: pd.DataFrame) -> pd.DataFrame:
    """Return X in the feature-frame shape (idempotent; raises on absent feature columns).

    Lets callers hand any DataFrame with the right columns; extra columns are dropped.
    """
    absent = [c for c in spec.feature_names if c not in X.columns]
    if absent:
        raise ValueError(f"missing feature columns: {absent}")
    columns: dict[str, Any] = {}
    for f in spec.features:
        col = X[f.name]
        if f.type == "numeric":
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                values = col.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
                if np.isinf(values).any():
                    raise ValueError(f"feature {f.name!r}: infinite values")
                columns[f.name] = values
            else:
                columns[f.name] = _numeric(col.to_numpy(dtype=object), f.name)
        else:
            columns[f.name] = pd.Series(_categorical(col.to_numpy(dtype=object)), dtype=object)
    return pd.DataFrame(columns, columns=spec.feature_names)


def target(spec: ModelSpec, values: Iterable[Any]) -> np.ndarray:
    """Targets as the models expect them: object array of str classes, or float64 values."""
    values = list(values)
    if spec.task == "classification":
        return np.array([class_name(v) for v in values], dtype=object)
    out = _numeric(values, spec.target)
    if np.isnan(out).any():
        raise ValueError(f"target {spec.target!r}: regression targets must not be missing")
    return out
