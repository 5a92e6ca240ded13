"""The v1 JSON format: rows of `{feature: value}` in, predictions with ids out.

Decoding makes one pass over the rows and checks value types per column; only when something
is off does it run the full validation that names every offending row and field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from api.dataplane import Columns, Served
from api.serving import MISSING_CATEGORY
from registry.errors import InvalidData
from registry.validation import check_instances
from tuning.spec import ModelSpec

_NUMERIC = {float, int, type(None)}
_CATEGORICAL = {str, type(None)}


def decode_rows(spec: ModelSpec, instances: Any) -> Columns:
    if not isinstance(instances, list) or not instances:
        raise InvalidData(
            "instances must be a non-empty list",
            [{"row": None, "field": "instances", "message": "must be a non-empty list of objects"}],
        )
    names = spec.feature_names
    raw: dict[str, list[Any]] = {}
    try:
        for name in names:
            raw[name] = [row[name] for row in instances]
        regular = all(type(row) is dict and len(row) == len(names) for row in instances)
    except (KeyError, TypeError):
        regular = False
    if not regular:
        check_instances(spec, instances)  # raises with every problem named
        raw = {name: [row[name] for row in instances] for name in names}
    feeds: dict[str, np.ndarray] = {}
    for feature in spec.features:
        values = raw[feature.name]
        kinds = set(map(type, values))
        if feature.type == "numeric":
            column = None
            if kinds <= _NUMERIC:
                with np.errstate(over="ignore"):  # overflow becomes inf, refused below
                    column = np.asarray(values, dtype=np.float32).reshape(-1, 1)
            if column is None or np.isinf(column).any():
                check_instances(spec, instances)
                raise InvalidData(
                    "numeric values out of range",
                    [
                        {
                            "row": None,
                            "field": f"instances[].{feature.name}",
                            "message": "values must fit a 32-bit float",
                        }
                    ],
                )
        else:
            if not kinds <= _CATEGORICAL:
                check_instances(spec, instances)
            if type(None) in kinds:
                values = [MISSING_CATEGORY if v is None else v for v in values]
            column = np.asarray(values, dtype=object).reshape(-1, 1)
        feeds[feature.name] = column
    return Columns(len(instances), feeds, raw)


def encode_predictions(name: str, served: Served) -> dict[str, Any]:
    """`{"model", "version", "predictions": [{"id", "label", "probabilities"}]}`."""
    labels = served.labels.tolist()
    classes = served.model.classes
    if served.proba is not None and classes is not None:
        rows = served.proba.tolist()
        predictions = [
            {"id": pid, "label": label, "probabilities": dict(zip(classes, p, strict=True))}
            for pid, label, p in zip(served.ids, labels, rows, strict=True)
        ]
    else:
        predictions = [
            {"id": pid, "label": label} for pid, label in zip(served.ids, labels, strict=True)
        ]
    return {"model": name, "version": served.model.version, "predictions": predictions}
