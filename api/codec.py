"""The v1 JSON format: rows of `{feature: value}` in, predictions with ids out.

A raw body goes through a msgspec decoder typed from the model's features, which parses and
checks every value in one pass. Rows it refuses take the checked path: one pass over the rows
that checks value types per column, and only when something is off the full validation that
names every offending row and field.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import msgspec
import numpy as np
import orjson
from msgspec.structs import astuple

from api.champions import MISSING_CATEGORY, Columns, LoadedModel
from api.dataplane import DataPlane, Served
from api.deps import field
from api.errors import MalformedInput
from registry.errors import InvalidData
from registry.validation import check_instances

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
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
    if not _well_typed(model, rows):
        check_instances(spec, instances)  # raises, naming the rows and fields
        raise AssertionError("check_instances passed a value of the wrong type")
    columns = typed_columns(model, rows)
    if columns is None:
        check_instances(spec, instances)
        raise InvalidData("numeric values out of range", _overflows(model, rows))
    return columns


def _overflows(model: LoadedModel, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The numbers of rows in feature order that a 32-bit float cannot hold, by row and field."""
    problems = []
    with np.errstate(over="ignore"):
        for i, row in enumerate(rows):
            for name, at in zip(model.numeric, model.numeric_at, strict=True):
                if row[at] is not None and np.isinf(np.float32(row[at])):
                    message = "must fit a 32-bit float (at most ±3.4e38)"
                    problems.append(
                        {"row": i, "field": f"instances[{i}].{name}", "message": message}
                    )
    return problems


def _well_typed(model: LoadedModel, rows: list[tuple[Any, ...]]) -> bool:
    """Whether every numeric value is a number or null and every categorical one a string or
    null, checked per column of types rather than per value."""
    if model.numeric:
        numeric = map(_picker(model.numeric_at), rows) if model.categorical else rows
        if not set(map(type, chain.from_iterable(numeric))) <= _NUMERIC:
            return False
    return all({type(r[at]) for r in rows} <= _CATEGORICAL for at in model.categorical_at)


def _picker(keys: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving a row's values at `keys` as a tuple (itemgetter returns a bare value
    for one key)."""
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return itemgetter(*keys)


def encode_predictions(name: str, served: Served) -> bytes:
    """The JSON of `{"model", "version", "predictions": [{"id", "label", "probabilities"}]}`.

    orjson writes the numbers from the arrays (floats as the shortest decimal of their float32,
    as the V2 JSON has them) and each row is joined from fixed pieces around its values: no
    dict per row and no Python float per value.
    """
    model, n = served.model, len(served.ids)
    classes = model.classes if served.proba is not None and model.classes is not None else []
    stride = 5 + 2 * len(classes)  # the pieces of one row
    pieces: list[str] = [""] * (n * stride)
    pieces[0::stride] = repeat(',{"id":"', n)
    pieces[1::stride] = served.ids
    pieces[2::stride] = repeat('","label":', n)
    texts, keys = _class_texts(tuple(model.classes or ()))
    pieces[3::stride] = _label_texts(served.labels, texts)
    if classes:
        assert served.proba is not None  # a classifier's graph gives probabilities
        values = _numbers(served.proba)
        for j, key in enumerate(keys):
            pieces[4 + 2 * j :: stride] = repeat(key, n)
            pieces[5 + 2 * j :: stride] = values[j :: len(keys)]
    pieces[stride - 1 :: stride] = repeat("}}" if classes else "}", n)
    pieces[0] = '{"id":"'  # no comma before the first row
    head = orjson.dumps({"model": name, "version": model.version})[:-1]
    return b"".join((head, b',"predictions":[', "".join(pieces).encode(), b"]}"))


def _numbers(matrix: np.ndarray) -> list[str]:
    """Every value of a float matrix as JSON text, row by row."""
    text = orjson.dumps(np.asarray(matrix, dtype=np.float32).ravel(), option=_NUMPY).decode()
    return text[1:-1].split(",")


@lru_cache(maxsize=64)
def _class_texts(classes: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Each class as a JSON label, and the pieces that open each class's probability."""
    texts = {c: orjson.dumps(c).decode() for c in classes}
    keys = [("," if j else ',"probabilities":{') + texts[c] + ":" for j, c in enumerate(classes)]
    return texts, keys


def _label_texts(labels: np.ndarray, texts: dict[str, str]) -> list[str]:
    """Each row's label as JSON text: a class name, or a number for a regressor."""
    if labels.dtype.kind == "f":
        return _numbers(labels)
    values = labels.tolist()
    try:
        return list(map(texts.__getitem__, values))
    except KeyError:  # a label outside the classes
        return [orjson.dumps(v).decode() for v in values]


def decode_body(plane: DataPlane, name: str, body: bytes) -> tuple[LoadedModel, Columns]:
    """The served model and the body's validated columns, the size limit checked first. A
    valid body is parsed and checked in one pass by a decoder typed from the model's
    features; anything it refuses is parsed again and checked value by value, so that every
    problem is named."""
    model = plane.model(name)
    instances = typed_instances(model, body)
    if instances:
        plane.check_size(len(instances))
        columns = instance_columns(model, instances)
        if columns is not None:
            return model, columns
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"the request body is not valid JSON: {exc}") from exc
    rows = field(payload, "instances")
    if isinstance(rows, list):
        plane.check_size(len(rows))
    return model, decode_rows(model, rows)


def typed_instances(model: LoadedModel, body: bytes) -> list[Any] | None:
    """The rows, decoded into structs whose fields are the features in order, when every row
    has exactly the model's features, each a number or null (numeric) or a string or null
    (categorical); None otherwise."""
    try:
        return _decoder(model.names, model.categorical).decode(body).instances
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def instance_columns(model: LoadedModel, instances: list[Any]) -> Columns | None:
    """typed_columns of decoded rows. An all-numeric model's values stream into one float32
    matrix (null as NaN) without a tuple list in between."""
    if model.categorical or not model.numeric:
        return typed_columns(model, list(map(astuple, instances)))
    n, width = len(instances), len(model.numeric)
    values = chain.from_iterable(map(astuple, instances))
    numeric = _float32(lambda: np.fromiter(values, np.float32, count=n * width).reshape(n, width))
    return None if numeric is None else Columns(n, numeric, {})


def typed_columns(model: LoadedModel, rows: list[tuple[Any, ...]]) -> Columns | None:
    """Columns from rows in feature order whose values have the right types (null as NaN or
    MISSING_CATEGORY); None if a number overflows a float32."""
    numeric: np.ndarray | None = np.empty((len(rows), 0), dtype=np.float32)
    if model.numeric:  # one conversion for every numeric column: per-column calls add up
        picked = list(map(_picker(model.numeric_at), rows)) if model.categorical else rows
        numeric = _float32(lambda: np.array(picked, dtype=np.float32))
    if numeric is None:
        return None
    categorical = {}
    for name, at in zip(model.categorical, model.categorical_at, strict=True):
        values = [MISSING_CATEGORY if r[at] is None else r[at] for r in rows]
        categorical[name] = np.asarray(values, dtype=object)
    return Columns(len(rows), numeric, categorical)


def _float32(convert: Callable[[], np.ndarray]) -> np.ndarray | None:
    """The float32 matrix `convert` makes (numpy reads null as NaN), or None if a number
    overflowed a float32 and became inf."""
    with np.errstate(over="ignore"):
        matrix = convert()
    return None if np.logical_or.reduce(np.isinf(matrix), axis=None) else matrix


@lru_cache(maxsize=64)
def _decoder(names: tuple[str, ...], categorical: tuple[str, ...]) -> msgspec.json.Decoder:
    """A JSON decoder of `{"instances": [...]}` whose rows must hold exactly `names`."""
    fields = [(n, (str | None) if n in categorical else (float | None)) for n in names]
    row: Any = msgspec.defstruct("Row", fields, forbid_unknown_fields=True, gc=False)
    return msgspec.json.Decoder(msgspec.defstruct("Body", [("instances", list[row])]))
