"""The v1 JSON format: rows of `{feature: value}` in, predictions with ids out.

Decoding makes one pass over the rows and checks value types per column; only when something
is off does it run the full validation that names every offending row and field.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np

from api.dataplane import DataPlane, Served
from api.serving import MISSING_CATEGORY, Columns, LoadedModel
from registry.errors import InvalidData
from registry.validation import check_instances

_NUMERIC = {float, int, type(None)}
_CATEGORICAL = {str, type(None)}


def decode_rows(model: LoadedModel, instances: Any) -> Columns:
    """Validated feeds for the model's graph from JSON rows, in one pass over the rows."""
    if not isinstance(instances, list) or not instances:
        raise InvalidData(
            "instances must be a non-empty list",
            [{"row": None, "field": "instances", "message": "must be a non-empty list of objects"}],
        )
    spec, names = model.spec, model.names
    try:  # C-level loops: itemgetter picks the features, len() spots extra fields
        rows = list(map(_picker(names), instances))
        regular = set(map(len, instances)) == {len(names)}
    except (KeyError, TypeError):
        regular = False
    if not regular:
        check_instances(spec, instances)  # raises with every problem named
        rows = list(map(_picker(names), instances))
    numeric = np.empty((len(rows), 0), dtype=np.float32)
    if model.numeric:  # one conversion for every numeric column: per-column calls add up
        numeric_rows = list(map(_picker(model.numeric_at), rows)) if model.categorical else rows
        if not set(map(type, chain.from_iterable(numeric_rows))) <= _NUMERIC:
            check_instances(spec, instances)  # raises, naming the rows and fields
        with np.errstate(over="ignore"):  # overflow becomes inf, refused below
            numeric = np.array(numeric_rows, dtype=np.float32)
        if np.logical_or.reduce(np.isinf(numeric), axis=None):  # no Python-level wrapper
            check_instances(spec, instances)
            raise InvalidData(
                "numeric values out of range",
                [{"row": None, "field": "instances", "message": "values must fit a 32-bit float"}],
            )
    categorical = {}
    for name, at in zip(model.categorical, model.categorical_at, strict=True):
        values = [r[at] for r in rows]
        kinds = set(map(type, values))
        if not kinds <= _CATEGORICAL:
            check_instances(spec, instances)
        if type(None) in kinds:
            values = [MISSING_CATEGORY if v is None else v for v in values]
        categorical[name] = np.asarray(values, dtype=object)
    return Columns(len(rows), numeric, categorical)


def _picker(keys: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving a row's values at `keys` as a tuple (itemgetter returns a bare value
    for one key)."""
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return itemgetter(*keys)


def encode_predictions(name: str, served: Served) -> dict[str, Any]:
    """`{"model", "version", "predictions": [{"id", "label", "probabilities"}]}`."""
    labels = served.labels.tolist()
    classes = served.model.classes
    if served.proba is not None and classes is not None:
        probabilities = map(dict, map(zip, repeat(classes), served.proba.tolist()))
        predictions = [
            {"id": pid, "label": label, "probabilities": p}
            for pid, label, p in zip(served.ids, labels, probabilities, strict=True)
        ]
    else:
        predictions = [
            {"id": pid, "label": label} for pid, label in zip(served.ids, labels, strict=True)
        ]
    return {"model": name, "version": served.model.version, "predictions": predictions}


def decode_request(plane: DataPlane, name: str, instances: Any) -> tuple[LoadedModel, Columns]:
    """The served model and the request's validated columns, the size limit checked first."""
    model = plane.model(name)
    if isinstance(instances, list):
        plane.check_size(len(instances))
    return model, decode_rows(model, instances)


def predict_rows(plane: DataPlane, name: str, instances: Any) -> dict[str, Any]:
    """The v1 predict: rows in, one ONNX call through the data plane, predictions out."""
    model, columns = decode_request(plane, name, instances)
    return encode_predictions(name, plane.infer(model, columns))
