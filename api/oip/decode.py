"""The Open Inference Protocol (KServe V2) over REST: tensors in, tensors out.

Inputs are one tensor per feature (`[N, 1]` or `[N]`: FP32/FP64/INT64/INT32 for numeric
features, BYTES for categorical ones), or, for all-numeric models, one `[N, n_features]` tensor
in feature order. Data may be flat or nested row-major JSON, or raw bytes behind the JSON header
(the binary tensor extension tritonclient uses by default: `Inference-Header-Content-Length`
and `binary_data_size`). Outputs: `label` (BYTES [N]) and `probabilities` (FP32 [N, classes])
for classifiers, `variable` (FP32 [N, 1]) for regressors, and `prediction_id` (BYTES [N]) for
feedback.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson

from api.champions import MISSING_CATEGORY, Columns, LoadedModel
from api.dataplane import DataPlane, parse_version
from registry.errors import clip, excerpt

NUMERIC_TYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "FP16": np.float16,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
}
HEADER = "inference-header-content-length"
Datatype = Literal["FP32", "BYTES"]
# Nesting levels of the JSON an infer request may have: a tensor's data sits 3 levels deep
# (request, inputs, tensor) and takes one more per dimension, and numpy has at most 64.
MAX_DEPTH = 64
_NESTING = np.zeros(256, dtype=np.int8)  # what each byte does to the nesting level
_NESTING[[ord("["), ord("{")]] = 1
_NESTING[[ord("]"), ord("}")]] = -1


class ProtocolError(ValueError):
    """A malformed inference request, or one that does not fit the model's inputs."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool] | None  # requested output -> binary; None: all, per `binary_all`
    binary_all: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_infer(
    plane: DataPlane, name: str, version: str | None, body: bytes, header_length: str | None
) -> tuple[LoadedModel, InferRequest, Columns]:
    """The served model, the parsed request and its validated columns, the size limit checked."""
    model = plane.model(name, parse_version(version))
    parsed = parse(body, header_length)
    if parsed.outputs is not None:  # refused before the model runs and its answer is logged
        known = outputs_of(model)
        if unknown := sorted(set(parsed.outputs) - set(known)):
            raise ProtocolError(
                f"unknown outputs {excerpt(unknown)}; this model has {sorted(known)}"
            )
    columns = to_columns(model, parsed)
    plane.check_size(columns.n)
    return model, parsed, columns


def outputs_of(model: LoadedModel) -> dict[str, tuple[Datatype, list[int]]]:
    """The outputs infer answers for the model: datatype and shape (-1 is the batch)."""
    out: dict[str, tuple[Datatype, list[int]]]
    if model.spec.task == "regression":
        out = {"variable": ("FP32", [-1, 1])}
    else:
        out = {"label": ("BYTES", [-1]), "probabilities": ("FP32", [-1, len(model.classes or [])])}
    return out | {"prediction_id": ("BYTES", [-1])}


def parse(body: bytes, header_length: str | None) -> InferRequest:
    """Read a JSON or binary-extension infer request."""
    try:
        json_end = int(header_length) if header_length else len(body)
    except ValueError as exc:
        raise ProtocolError("Inference-Header-Content-Length must be an integer") from exc
    if not 0 < json_end <= len(body):
        raise ProtocolError("Inference-Header-Content-Length is outside the body")
    try:
        request = orjson.loads(body[:json_end])
    except orjson.JSONDecodeError as exc:
        request = _fallback(body[:json_end], exc)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError("the request needs an 'inputs' list")
    offset, inputs = json_end, []
    for i, spec in enumerate(request["inputs"]):
        tensor, offset = _tensor(spec, i, body, offset)
        inputs.append(tensor)
    if offset != len(body):
        raise ProtocolError(f"{len(body) - offset} bytes after the last binary tensor")
    params = _parameters(request, "the request's")
    outputs = None
    if request.get("outputs") is not None:
        if not isinstance(request["outputs"], list):
            raise ProtocolError("'outputs' must be a list of objects")
        outputs = {}
        for i, o in enumerate(request["outputs"]):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ProtocolError(f"outputs[{i}] must be an object with a string 'name'")
            where = f"outputs[{i}]"
            outputs[o["name"]] = bool(_parameters(o, where).get("binary_data", False))
    request_id = request.get("id")
    if request_id is not None and type(request_id) is not str:
        request_id = _number_id(request_id)
    return InferRequest(
        request_id,
        inputs,
        outputs,
        bool(params.get("binary_data_output", False)),
        params,
    )


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    """The 'parameters' object of the request, an input or an output ({} when absent)."""
    params = holder.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{where} 'parameters' must be an object")
    return params


def _number_id(value: Any) -> str:
    """An id that is not a string (V2 has it one): a number is taken as its text, anything else
    refused (str() of a list nested a thousand levels deep would recurse past Python's limit),
    a boolean too, which is no number in JSON."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError("the request's 'id' must be a string or a number")


def _fallback(header: bytes, refusal: orjson.JSONDecodeError) -> Any:
    """The header orjson refused, read by the standard library, which takes the NaN that
    clients such as tritonclient write for missing floats (JSON has none). That decoder
    recurses once per level, so a header nested deeper than MAX_DEPTH (orjson refuses past
    1024 levels) is refused before it is read, here, off the path of well-formed requests."""
    opening = header.count(b"[") + header.count(b"{")  # no deeper than this, in C
    if opening > MAX_DEPTH and (depth := _depth(header)) > MAX_DEPTH:
        raise ProtocolError(
            f"the inference header is nested too deeply: {depth} levels of arrays and "
            f"objects, at most {MAX_DEPTH}"
        )
    try:
        return json.loads(header)
    except ValueError:
        raise ProtocolError(f"the inference header is not valid JSON: {refusal}") from refusal


def _depth(text: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, brackets in strings not
    counted, in a few vectorised passes."""
    raw = np.frombuffer(text, dtype=np.uint8)
    quote = raw == ord('"')
    if b"\\" in text:  # a quote after an odd run of backslashes is escaped
        at = np.arange(raw.size, dtype=np.int64)
        backslash = raw == ord("\\")
        run = at - np.maximum.accumulate(np.where(backslash, -1, at))  # backslashes ending here
        quote[1:] &= run[:-1] % 2 == 0
    steps = _NESTING[raw]
    steps[np.bitwise_xor.accumulate(quote)] = 0  # inside a string
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def _tensor(spec: Any, i: int, body: bytes, offset: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict):
        raise ProtocolError(f"inputs[{i}] must be an object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise ProtocolError(f"inputs[{i}] needs a name and a datatype")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"input {excerpt(name)}: shape must be a list of sizes")
    count = math.prod(shape)
    size = _parameters(spec, f"inputs[{i}]").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(body):
            raise ProtocolError(f"input {excerpt(name)}: binary_data_size exceeds the body")
        raw, offset = body[offset : offset + size], offset + size
        data = _from_bytes(name, datatype, raw, count)
    else:
        if "data" not in spec:
            raise ProtocolError(f"input {excerpt(name)} has neither data nor binary_data_size")
        data = _from_json(name, datatype, spec["data"], count)
    return Tensor(name, datatype, shape, data.reshape(shape) if shape else data), offset


def _from_json(name: str, datatype: str, data: Any, count: int) -> np.ndarray:
    if datatype == "BOOL":
        raise ProtocolError(f"input {excerpt(name)}: BOOL is not a feature type")
    if datatype != "BYTES" and datatype not in NUMERIC_TYPES:
        raise ProtocolError(f"input {excerpt(name)}: unknown datatype {excerpt(datatype)}")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
        else:
            with np.errstate(over="ignore"):  # a float's overflow becomes inf, refused later
                flat = np.asarray(data, dtype=NUMERIC_TYPES[datatype]).reshape(-1)
    except OverflowError as exc:  # an integer out of an integer type's range
        raise ProtocolError(
            f"input {excerpt(name)}: a value is out of the range of {datatype}"
        ) from exc
    except (ValueError, TypeError) as exc:
        bad = _not_a_number(data) if datatype in NUMERIC_TYPES else None
        why = clip(str(exc)) if bad is None else excerpt(bad)  # numpy's words quote it whole
        raise ProtocolError(
            f"input {excerpt(name)}: data does not match {datatype}: {why}"
        ) from exc
    if flat.size != count:
        raise ProtocolError(
            f"input {excerpt(name)}: its shape needs {count} values, got {flat.size}"
        )
    return flat


def _not_a_number(data: Any) -> Any:
    """The first value in nested lists that is neither a number nor null; None if none is."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
        elif value is not None and not isinstance(value, int | float):
            return value
    return None


def _from_bytes(name: str, datatype: str, raw: bytes, count: int) -> np.ndarray:
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ProtocolError(f"input {excerpt(name)}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            items.append(raw[pos + 4 : pos + 4 + length])
            pos += 4 + length
        flat = np.empty(len(items), dtype=object)
        flat[:] = items
    elif datatype in NUMERIC_TYPES:
        dtype = np.dtype(NUMERIC_TYPES[datatype]).newbyteorder("<")
        if len(raw) != count * dtype.itemsize:
            raise ProtocolError(f"input {excerpt(name)}: {len(raw)} bytes for {count} {datatype}")
        flat = np.frombuffer(raw, dtype=dtype)
    else:
        raise ProtocolError(f"input {excerpt(name)}: unsupported datatype {excerpt(datatype)}")
    if flat.size != count:
        raise ProtocolError(
            f"input {excerpt(name)}: its shape needs {count} values, got {flat.size}"
        )
    return flat


def to_columns(model: LoadedModel, request: InferRequest) -> Columns:
    """The request's tensors as the model's validated feature columns."""
    spec = model.spec
    if not request.inputs:
        raise ProtocolError("the request has no inputs")
    by_name = {t.name: t for t in request.inputs}
    if len(request.inputs) == 1 and request.inputs[0].name not in model.names:
        return _matrix(model, request.inputs[0])
    unknown = sorted(set(by_name) - set(spec.feature_names))
    missing = [f for f in spec.feature_names if f not in by_name]
    if unknown or missing:
        raise ProtocolError(
            f"inputs must be the features {spec.feature_names}; "
            f"missing {missing}, unknown {excerpt(unknown)}"
        )
    n = None
    numeric, categorical = [], {}
    for feature in spec.features:
        tensor = by_name[feature.name]
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise ProtocolError(f"input {feature.name!r}: shape must be [N] or [N, 1]")
        if n is None:
            n = tensor.shape[0]
        elif tensor.shape[0] != n:
            raise ProtocolError(f"input {feature.name!r}: {tensor.shape[0]} rows, others {n}")
        values = tensor.data.reshape(-1)
        if feature.type == "numeric":
            if tensor.datatype not in NUMERIC_TYPES:
                raise ProtocolError(
                    f"input {feature.name!r}: numeric feature, got {tensor.datatype}"
                )
            numeric.append(_finite(feature.name, values))
        else:
            if tensor.datatype != "BYTES":
                raise ProtocolError(f"input {feature.name!r}: categorical feature needs BYTES")
            strings = [_text(feature.name, v) for v in values]
            categorical[feature.name] = np.asarray(
                [MISSING_CATEGORY if s == "" else s for s in strings], dtype=object
            )
    if not n:
        raise ProtocolError("the inputs hold no rows")
    matrix = np.stack(numeric, axis=1) if numeric else np.empty((n, 0), dtype=np.float32)
    return Columns(n, matrix, categorical)


def _matrix(model: LoadedModel, tensor: Tensor) -> Columns:
    spec = model.spec
    width = len(model.names)
    if model.categorical:
        raise ProtocolError(
            f"input {excerpt(tensor.name)} is not a feature; this model has "
            "categorical features, so send one tensor per feature"
        )
    if tensor.datatype not in NUMERIC_TYPES:
        raise ProtocolError(f"input {excerpt(tensor.name)}: numeric tensor expected")
    if len(tensor.shape) != 2 or tensor.shape[1] != width or tensor.shape[0] == 0:
        raise ProtocolError(
            f"input {excerpt(tensor.name)}: shape must be [N, {width}] (features "
            f"{spec.feature_names}), got {excerpt(tensor.shape)}"
        )
    return Columns(tensor.shape[0], _finite(tensor.name, tensor.data), {})


def _finite(name: str, values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # overflow becomes inf, refused below
        out = values.astype(np.float32, copy=False)
    if np.logical_or.reduce(np.isinf(out), axis=None):
        raise ProtocolError(f"input {excerpt(name)}: values must be finite (NaN means missing)")
    return out


def _text(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"input {excerpt(name)}: BYTES must be UTF-8 text") from exc
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    raise ProtocolError(f"input {excerpt(name)}: BYTES elements must be strings")
