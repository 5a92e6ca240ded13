"""A crafted table of bad inputs to predict, infer, feedback, data (JSON, CSV and multipart),
model creation and promotion, on SQLite and on PostgreSQL: wrong types, missing and unknown
fields, numbers huge, negative, non-finite and past 2^64, deep nesting, long strings, empty
lists, unknown prediction ids, bad CSV, bad versions, bodies over the limit.

Every case is answered with its own 4xx, names the offending field where the route lists
field-level problems (the v1 `detail`; under the Open Inference Protocol the one-line `error`
names the input), sends back at most a short prefix of a long input, and leaves nothing
stored: no model, version, champion change, labelled row, logged prediction, job or audit
entry.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.db import Database
from registry.errors import ECHO_CHARS
from registry.migrate import upgrade
from registry.models import Event, Job, LabelledRow, Model, ModelVersion, PredictionBatch
from tests.api.conftest import ADMIN, app_client, train_version, with_champion
from tests.conftest import fresh_postgres
from tests.factories import churn_spec

PREDICT = "/v1/models/{name}/predict"
INFER = "/v2/models/{name}/infer"
FEEDBACK = "/v1/models/{name}/feedback"
DATA = "/v1/admin/models/{name}/data"
CREATE = "/v1/admin/models"
PROMOTE = "/v1/admin/models/{name}/promote"
ROLLBACK = "/v1/admin/models/{name}/rollback"

KEY = {"Authorization": "Bearer table-client-key-0123456789"}
MAX_BODY = 1024 * 1024
MAX_ROWS = 50
LONG = "Z" * 100_000  # no answer may send back more than ECHO_CHARS of it
CUT = "Z" * ECHO_CHARS + "…"  # how a long name is quoted
OVER_64 = orjson.Fragment(b"18446744073709551617")  # 2**64 + 1, as JSON (orjson writes no more)
ROW: dict[str, Any] = {"x1": 0.52, "x2": -1.3, "x3": 0.07, "x4": 2.0, "color": "red"}
GOOD = {**ROW, "churned": "yes"}
PID = "$prediction"  # replaced by the id of a real prediction
HEADER = "x1,x2,x3,x4,color,churned"
SPEC = churn_spec("fresh").model_dump(mode="json")
NOT_JSON, NOT_UTF8 = b"{not json", b'{"a": "\xff\xfe"}'


@dataclass(frozen=True)
class Bad:
    """A request and what must answer it: `status`, and the field the answer names (v1: a
    problem's `field`, None for a problem of the whole body or a plain message; V2: a text
    the error contains)."""

    id: str
    path: str
    status: int
    field: str | None = None
    body: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    name: str = "churn"
    version: str = "1"


def _without(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


def _deep(levels: int) -> orjson.Fragment:
    """A number in `levels` nested lists, as raw JSON (orjson writes no more than 255)."""
    return orjson.Fragment(b"[" * levels + b"1" + b"]" * levels)


def _huge(path: str) -> bytes:
    return orjson.dumps({"pad": "x" * MAX_BODY})


def _tensors(**changes: dict[str, Any]) -> dict[str, Any]:
    """A one-row infer request with one tensor per feature; `changes` per input name (an
    input changed to None is left out)."""
    inputs = [{"name": k, "datatype": "FP32", "shape": [1, 1], "data": [ROW[k]]} for k in ROW]
    inputs[-1] = {"name": "color", "datatype": "BYTES", "shape": [1, 1], "data": ["red"]}
    out = []
    for tensor in inputs:
        change = changes.get(tensor["name"], {})
        if change is not None:
            out.append({**tensor, **change})
    return {"inputs": out}


def _csv(*lines: str) -> bytes:
    return "\n".join(lines).encode() + b"\n"


def predict(id: str, field: str | None, body: Any = None, **kw: Any) -> Bad:
    return Bad(f"predict-{id}", PREDICT, kw.pop("status", 422), field, body, **kw)


def infer(id: str, says: str, body: Any = None, **kw: Any) -> Bad:
    return Bad(f"infer-{id}", kw.pop("path", INFER), kw.pop("status", 400), says, body, **kw)


def feedback(id: str, field: str | None, body: Any = None, **kw: Any) -> Bad:
    return Bad(f"feedback-{id}", FEEDBACK, kw.pop("status", 422), field, body, **kw)


def data(id: str, field: str | None, body: Any = None, **kw: Any) -> Bad:
    return Bad(f"data-{id}", DATA, kw.pop("status", 422), field, body, **kw)


def csv_data(id: str, field: str | None, text: bytes, ctype: str = "text/csv") -> Bad:
    return Bad(f"csv-{id}", DATA, 422, field, content=text, headers={"Content-Type": ctype})


def create(id: str, field: str | None, body: Any = None, **kw: Any) -> Bad:
    return Bad(f"create-{id}", CREATE, kw.pop("status", 422), field, body, **kw)


def promote(id: str, field: str | None, body: Any = None, **kw: Any) -> Bad:
    return Bad(f"promote-{id}", PROMOTE, kw.pop("status", 422), field, body, **kw)


def _spec(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **changes}


def _retrain(**changes: Any) -> dict[str, Any]:
    return _spec(retrain={**SPEC["retrain"], **changes})


CASES = [
    # --- predict -----------------------------------------------------------------------------
    predict("not-json", None, content=NOT_JSON),
    predict("not-utf8", None, content=NOT_UTF8),
    predict("empty-body", None, content=b""),
    predict("a-list", None, [ROW]),
    predict("no-instances", "instances", {}),
    predict("misspelt-instances", "instances", {"instance": [ROW]}),
    predict("instances-empty", "instances", {"instances": []}),
    predict("instances-an-object", "instances", {"instances": ROW}),
    predict("instances-a-long-string", "instances", {"instances": LONG}),
    predict("row-a-number", "instances[0]", {"instances": [1]}),
    predict("row-null", "instances[0]", {"instances": [None]}),
    predict("missing-feature", "instances[0].x1", {"instances": [_without(ROW, "x1")]}),
    predict("unknown-feature", "instances[0].x9", {"instances": [{**ROW, "x9": 1}]}),
    predict("long-unknown-feature", f"instances[0].{CUT}", {"instances": [{**ROW, LONG: 1}]}),
    predict("number-as-text", "instances[0].x1", {"instances": [{**ROW, "x1": "tall"}]}),
    predict("number-a-long-text", "instances[0].x1", {"instances": [{**ROW, "x1": LONG}]}),
    predict("number-a-boolean", "instances[0].x1", {"instances": [{**ROW, "x1": True}]}),
    predict("number-a-list", "instances[0].x1", {"instances": [{**ROW, "x1": [1.0]}]}),
    predict("number-an-object", "instances[0].x1", {"instances": [{**ROW, "x1": {"v": 1}}]}),
    predict("number-nested-deep", "instances[0].x1", {"instances": [{**ROW, "x1": _deep(500)}]}),
    predict("nested-past-the-limit", None, {"instances": [{**ROW, "x1": _deep(2_000)}]}),
    predict("number-past-a-float32", "instances[0].x1", {"instances": [{**ROW, "x1": 1e39}]}),
    predict(
        "number-past-a-float32-later",
        "instances[2].x4",
        {"instances": [ROW, ROW, {**ROW, "x4": -3.5e38}]},
    ),
    predict("number-infinite", None, content=b'{"instances": [{"x1": 1e400}]}'),
    predict("number-nan", None, content=b'{"instances": [{"x1": NaN}]}'),
    predict("category-a-number", "instances[0].color", {"instances": [{**ROW, "color": 5}]}),
    predict("category-a-boolean", "instances[0].color", {"instances": [{**ROW, "color": False}]}),
    predict("category-a-list", "instances[0].color", {"instances": [{**ROW, "color": ["r"]}]}),
    predict("second-row-bad", "instances[1].x2", {"instances": [ROW, {**ROW, "x2": "a"}]}),
    predict("too-many-rows", None, {"instances": [ROW] * (MAX_ROWS + 1)}, status=413),
    predict("body-over-the-limit", None, content=_huge(PREDICT), status=413),
    predict("unknown-model", None, {"instances": [ROW]}, name="nope", status=404),
    predict("long-model-name", None, {"instances": [ROW]}, name="Z" * 1000, status=404),
    # --- infer -------------------------------------------------------------------------------
    infer("not-json", "not valid JSON", content=NOT_JSON),
    infer("a-list", "'inputs' list", [1]),
    infer("no-inputs", "'inputs' list", {}),
    infer("inputs-empty", "no inputs", {"inputs": []}),
    infer("input-a-number", "inputs[0]", {"inputs": [5]}),
    infer("input-without-name", "inputs[0]", {"inputs": [{"datatype": "FP32", "shape": [1]}]}),
    infer("missing-feature", "missing ['x1']", _tensors(x1=None)),
    infer(
        "unknown-input",
        "unknown ['x9']",
        {
            "inputs": [
                *_tensors()["inputs"],
                {"name": "x9", "datatype": "FP32", "shape": [1, 1], "data": [1.0]},
            ]
        },
    ),
    infer("shape-negative", "'x1': shape", _tensors(x1={"shape": [-1, 1]})),
    infer("shape-text", "'x1': shape", _tensors(x1={"shape": ["1", 1]})),
    infer("shape-fraction", "'x1': shape", _tensors(x1={"shape": [1.5, 1]})),
    infer("shape-not-the-data", "'x1': its shape needs 2", _tensors(x1={"shape": [2, 1]})),
    infer("shape-huge", "'x1': its shape needs", _tensors(x1={"shape": [2**40, 1]})),
    infer("shape-past-2^64", "'x1'", _tensors(x1={"shape": [OVER_64, 1]})),
    infer("shape-3d", "'x1': shape must be", _tensors(x1={"shape": [1, 1, 1]})),
    infer(
        "rows-disagree", "'x2': 1 rows, others 2", _tensors(x1={"shape": [2, 1], "data": [1, 2]})
    ),
    infer("data-text", "'x1': data does not match FP32", _tensors(x1={"data": ["a"]})),
    infer("data-long-text", "'x1': data does not match FP32", _tensors(x1={"data": [LONG]})),
    infer("data-an-object", "'x1': data does not match FP32", _tensors(x1={"data": [{"a": 1}]})),
    infer("data-overflows-fp32", "'x1': values must be finite", _tensors(x1={"data": [1e39]})),
    infer(
        "data-overflows-fp16",
        "'x1': values must be finite",
        _tensors(x1={"datatype": "FP16", "data": [1e10]}),
    ),
    infer(
        "datatype-bool",
        "'x1': BOOL is not a feature type",
        _tensors(x1={"datatype": "BOOL", "data": [True]}),
    ),
    infer(
        "int64-past-2^64",
        "'x1': a value is out of the range of INT64",
        _tensors(x1={"datatype": "INT64", "data": [OVER_64]}),
    ),
    infer(
        "int32-overflow",
        "'x1': a value is out of the range of INT32",
        _tensors(x1={"datatype": "INT32", "data": [2**40]}),
    ),
    infer(
        "uint8-negative",
        "'x1': a value is out of the range of UINT8",
        _tensors(x1={"datatype": "UINT8", "data": [-1]}),
    ),
    infer("shape-a-boolean", "'x1': shape", _tensors(x1={"shape": [True, 1]})),
    infer("datatype-unknown-long", "'x1': unknown datatype", _tensors(x1={"datatype": LONG})),
    infer(
        "numeric-as-bytes",
        "'x1': numeric feature",
        _tensors(x1={"datatype": "BYTES", "data": ["1"]}),
    ),
    infer(
        "category-as-fp32",
        "'color': categorical feature needs BYTES",
        _tensors(color={"datatype": "FP32", "data": [1.0]}),
    ),
    infer(
        "category-a-number",
        "'color': BYTES elements must be strings",
        _tensors(color={"data": [5]}),
    ),
    infer(
        "no-data",
        "'x1' has neither data",
        _tensors(x1={"data": None})
        | {
            "inputs": [
                _without(t, "data") if t["name"] == "x1" else t for t in _tensors()["inputs"]
            ]
        },
    ),
    infer(
        "binary-size-negative",
        "'x1': binary_data_size",
        _tensors(x1={"parameters": {"binary_data_size": -1}}),
    ),
    infer(
        "binary-size-past-the-body",
        "'x1': binary_data_size",
        _tensors(x1={"parameters": {"binary_data_size": OVER_64}}),
    ),
    infer(
        "header-length-negative",
        "Inference-Header-Content-Length",
        _tensors(),
        headers={"Inference-Header-Content-Length": "-5"},
    ),
    infer(
        "header-length-text",
        "Inference-Header-Content-Length",
        _tensors(),
        headers={"Inference-Header-Content-Length": "abc"},
    ),
    infer(
        "outputs-unknown", "unknown outputs ['nope']", _tensors() | {"outputs": [{"name": "nope"}]}
    ),
    infer("outputs-an-object", "'outputs'", _tensors() | {"outputs": {}}),
    infer("parameters-a-number", "'parameters'", _tensors() | {"parameters": 5}),
    infer("id-an-object", "'id'", _tensors() | {"id": {}}),
    infer(
        "version-not-served",
        "serves version 1",
        _tensors(),
        version="9",
        status=404,
        path="/v2/models/{name}/versions/{version}/infer",
    ),
    infer(
        "version-text",
        "not a version number",
        _tensors(),
        version="x",
        status=404,
        path="/v2/models/{name}/versions/{version}/infer",
    ),
    infer("unknown-model", "not found", _tensors(), name="nope", status=404),
    infer(
        "too-many-rows",
        "rows exceed the limit",
        _tensors(
            **{k: {"shape": [MAX_ROWS + 1, 1], "data": [ROW[k]] * (MAX_ROWS + 1)} for k in ROW}
        ),
        status=413,
    ),
    infer("body-over-the-limit", "LOOPSERVE_MAX_BODY_BYTES", content=_huge(INFER), status=413),
    # --- feedback ----------------------------------------------------------------------------
    feedback("not-json", None, content=NOT_JSON),
    feedback("not-utf8", None, content=NOT_UTF8),
    feedback("empty-body", None, content=b""),
    feedback("no-labels", "labels", {}),
    feedback("labels-empty", "labels", {"labels": []}),
    feedback("labels-an-object", "labels", {"labels": {"label": "yes"}}),
    feedback("label-missing", "labels[0].label", {"labels": [{"prediction_id": PID}]}),
    feedback("label-null", "labels[0].label", {"labels": [{"prediction_id": PID, "label": None}]}),
    feedback("label-an-object", "labels[0].label", {"labels": [{"features": ROW, "label": {}}]}),
    feedback(
        "label-unknown-class",
        "labels[0].label",
        {"labels": [{"prediction_id": PID, "label": "perhaps"}]},
    ),
    feedback("label-long", "labels[0].label", {"labels": [{"prediction_id": PID, "label": LONG}]}),
    feedback(
        "label-past-2^64", "labels[0].label", {"labels": [{"prediction_id": PID, "label": OVER_64}]}
    ),
    feedback(
        "id-and-features",
        "labels[0]",
        {"labels": [{"prediction_id": PID, "features": ROW, "label": "yes"}]},
    ),
    feedback("neither-id-nor-features", "labels[0]", {"labels": [{"label": "yes"}]}),
    feedback(
        "unknown-prediction-id",
        "labels[0].prediction_id",
        {"labels": [{"prediction_id": "0" * 32, "label": "yes"}]},
    ),
    feedback(
        "long-prediction-id",
        "labels[0].prediction_id",
        {"labels": [{"prediction_id": LONG, "label": "yes"}]},
    ),
    feedback(
        "prediction-id-a-number",
        "labels[0].prediction_id",
        {"labels": [{"prediction_id": 5, "label": "yes"}]},
    ),
    feedback(
        "prediction-id-empty",
        "labels[0].prediction_id",
        {"labels": [{"prediction_id": "", "label": "yes"}]},
    ),
    feedback(
        "features-missing-one",
        "labels[0].features.x1",
        {"labels": [{"features": _without(ROW, "x1"), "label": "yes"}]},
    ),
    feedback(
        "features-unknown-one",
        "labels[0].features.x9",
        {"labels": [{"features": {**ROW, "x9": 1}, "label": "yes"}]},
    ),
    feedback(
        "features-number-as-text",
        "labels[0].features.x1",
        {"labels": [{"features": {**ROW, "x1": "tall"}, "label": "yes"}]},
    ),
    feedback(
        "features-null", "labels[0].features", {"labels": [{"features": None, "label": "yes"}]}
    ),
    feedback(
        "one-unknown-id-of-two",
        "labels[1].prediction_id",
        {
            "labels": [
                {"prediction_id": PID, "label": "yes"},
                {"prediction_id": "f" * 32, "label": "no"},
            ]
        },
    ),
    feedback(
        "one-bad-label-of-two",
        "labels[1].label",
        {"labels": [{"features": ROW, "label": "yes"}, {"features": ROW, "label": "perhaps"}]},
    ),
    feedback(
        "unknown-model",
        None,
        {"labels": [{"features": ROW, "label": "yes"}]},
        name="nope",
        status=404,
    ),
    feedback(
        "model-name-with-nul",
        None,
        {"labels": [{"features": ROW, "label": "yes"}]},
        name="a%00b",
        status=404,
    ),
    feedback("body-over-the-limit", None, content=_huge(FEEDBACK), status=413),
    # --- data, JSON --------------------------------------------------------------------------
    data("not-json", None, content=NOT_JSON),
    data("not-utf8", None, content=NOT_UTF8),
    data("empty-body", None, content=b""),
    data("a-list", None, [GOOD]),
    data("no-rows", "rows", {}),
    data("rows-empty", "rows", {"rows": []}),
    data("rows-an-object", "rows", {"rows": GOOD}),
    data("row-a-text", "rows[0]", {"rows": ["x1=1"]}),
    data("target-missing", "rows[0].churned", {"rows": [ROW]}),
    data("target-null", "rows[0].churned", {"rows": [{**GOOD, "churned": None}]}),
    data("target-empty", "rows[0].churned", {"rows": [{**GOOD, "churned": ""}]}),
    data("target-a-list", "rows[0].churned", {"rows": [{**GOOD, "churned": ["yes"]}]}),
    data("target-long", "rows[0].churned", {"rows": [{**GOOD, "churned": LONG}]}),
    data("target-with-nul", "rows[1].churned", {"rows": [GOOD, {**GOOD, "churned": "y\x00"}]}),
    data("number-as-text", "rows[0].x1", {"rows": [{**GOOD, "x1": "nan"}]}),
    data("number-a-boolean", "rows[0].x1", {"rows": [{**GOOD, "x1": False}]}),
    data("number-nested", "rows[0].x1", {"rows": [{**GOOD, "x1": _deep(100)}]}),
    data("number-infinite", None, content=b'{"rows": [{"x1": -1e400}]}'),
    data("feature-missing", "rows[0].x2", {"rows": [_without(GOOD, "x2")]}),
    data("feature-unknown", "rows[0].x9", {"rows": [{**GOOD, "x9": 1}]}),
    data("long-feature-name", f"rows[0].{CUT}", {"rows": [{**GOOD, LONG: 1}]}),
    data("one-bad-row-of-many", "rows[30].x3", {"rows": [GOOD] * 30 + [{**GOOD, "x3": "?"}]}),
    data("unknown-model", None, {"rows": [GOOD]}, name="nope", status=404),
    data("model-name-with-nul", None, {"rows": [GOOD]}, name="a%00b", status=404),
    data("body-over-the-limit", None, content=_huge(DATA), status=413),
    # --- data, CSV ---------------------------------------------------------------------------
    csv_data("empty", "file", b""),
    csv_data("header-only", "rows", _csv(HEADER)),
    csv_data("row-longer-than-the-header", "file", _csv(HEADER, "1,2,3,4,red,yes,extra")),
    csv_data("row-shorter-than-the-header", "file", _csv("churned,x1,x2,x3,x4,color", "yes,1,2")),
    csv_data("row-of-blanks", "file", _csv(HEADER, "1,2,3,4,red,yes", "   ")),
    csv_data("nan-cell", "rows[0].x1", _csv(HEADER, "nan,2,3,4,red,yes")),
    csv_data(
        "nan-cell-in-a-later-row", "rows[1].x4", _csv(HEADER, "1,2,3,4,red,no", "1,2,3,NaN,r,yes")
    ),
    csv_data("infinite-cell", "rows[0].x1", _csv(HEADER, "inf,2,3,4,red,yes")),
    csv_data("number-past-a-double", "rows[0].x1", _csv(HEADER, "9" * 400 + ",2,3,4,red,yes")),
    csv_data("target-long", "rows[0].churned", _csv(HEADER, f"1,2,3,4,red,{'Z' * 201}")),
    csv_data("formula-in-a-number", "rows[0].x1", _csv(HEADER, "=1+2,2,3,4,red,yes")),
    csv_data("function-in-a-number", "rows[0].x2", _csv(HEADER, '1,"@SUM(A1:A9)",3,4,red,yes')),
    csv_data("cell-over-the-csv-limit", "file", _csv(HEADER, f"1,2,3,4,{'Z' * 200_000},yes")),
    csv_data("not-utf8", "file", b"x1,x2\n\xff\xfe,1\n"),
    csv_data("no-target-column", "rows[0].churned", _csv("x1,x2,x3,x4,color", "1,2,3,4,red")),
    csv_data("unknown-column", "rows[0].extra", _csv(HEADER + ",extra", "1,2,3,4,red,yes,z")),
    csv_data("long-column-name", f"rows[0].{CUT}", _csv(HEADER + "," + LONG, "1,2,3,4,r,yes,z")),
    csv_data("column-twice", "rows[0].x2", _csv("x1,x1,x3,x4,color,churned", "1,2,3,4,r,yes")),
    csv_data("unclosed-quote", "file", _csv(HEADER, '1,2,3,4,"red,yes')),
    csv_data(
        "one-bad-row-of-many",
        "rows[5].x4",
        _csv(HEADER, *["1,2,3,4,red,yes"] * 5, "1,2,3,four,red,yes"),
    ),
    csv_data("multipart-without-boundary", "file", _csv(HEADER), "multipart/form-data"),
    csv_data("multipart-unreadable", "file", _csv(HEADER), "multipart/form-data; boundary=b"),
    Bad(
        "csv-multipart-without-file",
        DATA,
        422,
        "file",
        content=b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    # --- create ------------------------------------------------------------------------------
    create("not-json", None, content=NOT_JSON),
    create("not-utf8", None, content=NOT_UTF8),
    create("empty-body", None, content=b""),
    create("a-list", None, [SPEC]),
    create("name-missing", "name", _without(SPEC, "name")),
    create("name-long", "name", _spec(name=LONG)),
    create("name-not-a-name", "name", _spec(name="1 model")),
    create("name-with-nul", "name", _spec(name="a\x00b")),
    create("unknown-field", "owner", _spec(owner="me")),
    create("task-unknown", "task", _spec(task="ranking")),
    create("task-missing", "task", _without(SPEC, "task")),
    create("target-missing", "target", _without(SPEC, "target")),
    create("target-long", "target", _spec(target=LONG)),
    create("features-empty", "features", _spec(features=[])),
    create(
        "features-too-many",
        "features",
        _spec(features=[{"name": f"f{i}", "type": "numeric"} for i in range(2_001)]),
    ),
    create(
        "feature-type-unknown", "features[0].type", _spec(features=[{"name": "a", "type": "text"}])
    ),
    create(
        "feature-unknown-field",
        "features[0].unit",
        _spec(features=[{"name": "a", "type": "numeric", "unit": "m"}]),
    ),
    create(
        "feature-name-long", "features[0].name", _spec(features=[{"name": LONG, "type": "numeric"}])
    ),
    create("features-a-text", "features", _spec(features="x1")),
    create(
        "feature-twice", "features[1].name", _spec(features=[{"name": "a", "type": "numeric"}] * 2)
    ),
    create("target-a-feature", "target", _spec(target="x1")),
    create("metric-of-the-other-task", "metric", _spec(metric="rmse")),
    create("families-empty", "retrain.families", _retrain(families=[])),
    create("family-unknown", "retrain.families[1]", _retrain(families=["sgd", "xgboost"])),
    create("metric-long", "metric", _spec(metric=LONG)),
    create("classes-too-many", "classes", _spec(classes=[str(i) for i in range(10_001)])),
    create("max-candidates-past-2^64", "retrain.max_candidates", _retrain(max_candidates=OVER_64)),
    create("max-candidates-negative", "retrain.max_candidates", _retrain(max_candidates=-1)),
    create("max-candidates-a-fraction", "retrain.max_candidates", _retrain(max_candidates=1.5)),
    create("seed-negative", "retrain.seed", _retrain(seed=-1)),
    create("seed-past-2^64", "retrain.seed", _retrain(seed=OVER_64)),
    create("schedule-negative", "retrain.schedule_seconds", _retrain(schedule_seconds=-1)),
    create("max-seconds-huge", "retrain.max_seconds", _retrain(max_seconds=1e308)),
    create(
        "max-seconds-infinite",
        None,
        content=orjson.dumps(_retrain(max_seconds=1)).replace(
            b'"max_seconds":1', b'"max_seconds":Infinity'
        ),
    ),
    create("windows-empty", "retrain.windows", _retrain(windows=[])),
    create("windows-tiny", "retrain.windows", _retrain(windows=[1])),
    create("family-long", "retrain.families[0]", _retrain(families=[LONG])),
    create(
        "fixed-param-past-2^53", "retrain.fixed_params", _retrain(fixed_params={"alpha": 2**60})
    ),
    create("fixed-param-nested", "retrain.fixed_params", _retrain(fixed_params={"alpha": [[1.0]]})),
    create("retrain-a-text", "retrain", _spec(retrain="often")),
    create("promotion-test-unknown", "promotion.test", _spec(promotion={"test": "t-test"})),
    create("drift-window-zero", "drift.data_window", _spec(drift={"data_window": 0})),
    create("name-taken", None, churn_spec().model_dump(mode="json"), status=409),
    create("body-over-the-limit", None, content=_huge(CREATE), status=413),
    # --- promote -----------------------------------------------------------------------------
    promote("not-json", None, content=NOT_JSON),
    promote("empty-body", None, content=b""),
    promote("a-list", None, [2]),
    promote("version-missing", "version", {}),
    promote("version-as-text", "version", {"version": "2"}),
    promote("version-a-boolean", "version", {"version": True}),
    promote("version-null", "version", {"version": None}),
    promote("version-a-list", "version", {"version": [2]}),
    promote("version-a-fraction", "version", {"version": 1.5}),
    promote("version-zero", "version", {"version": 0}),
    promote("version-negative", "version", {"version": -2}),
    promote("version-past-2^31", "version", {"version": 2**31}),
    promote("version-past-2^64", "version", {"version": OVER_64}),
    promote("version-infinite", None, content=b'{"version": 1e400}'),
    promote("reason-a-list", "reason", {"version": 2, "reason": ["better"]}),
    promote("reason-an-object", "reason", {"version": 2, "reason": {"why": "better"}}),
    promote("reason-long", "reason", {"version": 2, "reason": LONG}),
    promote("reason-with-nul", "reason", {"version": 2, "reason": "better\x00"}),
    Bad("rollback-reason-long", ROLLBACK, 422, "reason", {"reason": LONG}),
    Bad("rollback-reason-with-nul", ROLLBACK, 422, "reason", {"reason": "worse\x00"}),
    promote("version-unknown", None, {"version": 99}, status=404),
    promote("version-the-champion", None, {"version": 1}, status=409),
    promote("unknown-model", None, {"version": 2}, name="nope", status=404),
    promote("model-name-with-nul", None, {"version": 2}, name="a%00b", status=404),
    promote("body-over-the-limit", None, content=_huge(PROMOTE), status=413),
]


@dataclass
class Deployment:
    client: TestClient
    db: Database
    prediction: str  # the id of a prediction the champion made


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The model "churn" with its champion (version 1) and a challenger (2), served with an
    admin token and API keys; one prediction made."""
    home = tmp_path_factory.mktemp(f"bad-{request.param}")
    if request.param == "sqlite":
        yield from _deploy(f"sqlite:///{home / 'loopserve.db'}", home)
    else:
        with fresh_postgres(request.getfixturevalue("postgres_server")) as url:
            yield from _deploy(url, home)


def _deploy(url: str, home: Path) -> Iterator[Deployment]:
    upgrade(url)
    db = Database(url)
    with_champion(db)
    train_version(db, "churn", seed=2)
    settings = {
        "api_keys": KEY["Authorization"].split()[1],
        "max_body_bytes": MAX_BODY,
        "max_batch_rows": MAX_ROWS,
        "log_flush_seconds": 0.05,
    }
    try:
        with app_client(url, home, **settings) as client:
            r = client.post(PREDICT.format(name="churn"), json={"instances": [ROW]}, headers=KEY)
            assert r.status_code == 200, r.text
            yield Deployment(client, db, r.json()["predictions"][0]["id"])
    finally:
        db.dispose()


def _stored(deployment: Deployment) -> dict[str, Any]:
    """Everything a request could have stored, once the prediction log is written."""
    assert deployment.client.app.state.dataplane.log.flush(10)  # type: ignore[attr-defined]
    with deployment.db.session() as s:
        return {
            "models": sorted(s.scalars(select(Model.name))),
            "versions": sorted(
                s.execute(select(ModelVersion.model_id, ModelVersion.version, ModelVersion.stage))
            ),
            "labelled": s.scalar(select(func.count()).select_from(LabelledRow)),
            "predicted": s.scalar(select(func.coalesce(func.sum(PredictionBatch.rows), 0))),
            "jobs": s.scalar(select(func.count()).select_from(Job)),
            "events": s.scalar(select(func.count()).select_from(Event)),
        }


def send(deployment: Deployment, case: Bad) -> Any:
    token = ADMIN if case.path.startswith("/v1/admin") else KEY
    headers = {**token, "Content-Type": "application/json", **(case.headers or {})}
    if case.content is not None:
        content = case.content
    else:
        content = orjson.dumps(case.body)
        content = content.replace(orjson.dumps(PID), orjson.dumps(deployment.prediction))
    url = case.path.format(name=case.name, version=case.version)
    return deployment.client.post(url, content=content, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_refused_naming_it_and_nothing_is_stored(
    deployment: Deployment, case: Bad
) -> None:
    before = _stored(deployment)
    r = send(deployment, case)
    assert r.status_code == case.status, r.text[:2_000]
    assert "Z" * (ECHO_CHARS + 1) not in r.text, "a long input sent back"
    assert len(r.content) < 8_192, r.text[:2_000]
    assert r.headers["content-type"] == "application/json"
    answer = r.json()
    if case.path.startswith("/v2/"):
        assert set(answer) == {"error"} and case.field in answer["error"], answer
    elif isinstance(answer["detail"], str):
        assert case.field is None, answer
    else:
        assert case.field in [p["field"] for p in answer["detail"]], answer
    assert _stored(deployment) == before, "something was stored"


def test_the_table_covers_each_route() -> None:
    counts: dict[str, int] = {}
    for case in CASES:
        counts[case.path] = counts.get(case.path, 0) + 1
    assert len(CASES) >= 100
    for path in (PREDICT, INFER, FEEDBACK, DATA, CREATE, PROMOTE):
        assert counts.get(path, 0) >= 10, path
    assert sum(c.id.startswith("csv-") for c in CASES) >= 10


def test_formula_cells_are_stored_as_the_text_they_are(deployment: Deployment) -> None:
    """A CSV cell that a spreadsheet would read as a formula is data here: stored as sent,
    never evaluated, escaped or refused."""
    cells = ["=1+2", "+SUM(A1:A9)", "-2+3", "@cmd", '=HYPERLINK("http://example")']
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    for cell in cells:
        writer.writerow([1, 2, 3, 4, cell, "yes"])
    before = _stored(deployment)["labelled"]
    headers = {**ADMIN, "Content-Type": "text/csv"}
    r = deployment.client.post(DATA.format(name="churn"), content=text.getvalue(), headers=headers)
    assert r.status_code == 202 and r.json() == {"accepted": len(cells)}, r.text
    with deployment.db.session() as s:
        rows = s.scalars(select(LabelledRow).order_by(LabelledRow.id.desc()).limit(len(cells)))
        stored = [row.features["color"] for row in rows][::-1]
    assert stored == cells
    assert _stored(deployment)["labelled"] == before + len(cells)


def test_a_name_with_a_nul_character_names_nothing(deployment: Deployment) -> None:
    """PostgreSQL's text holds no NUL character: a model name, job id or audit-log name with
    one is no name anything has (404), not a query the database refuses (500)."""
    client = deployment.client
    for method, url in (
        ("GET", "/v1/models/a%00b"),
        ("GET", "/v1/models/a%00b/versions"),
        ("GET", "/v1/models/a%00b/performance"),
        ("GET", "/v1/models/a%00b/drift"),
        ("GET", "/v1/admin/events?model=a%00b"),
        ("GET", "/v1/admin/jobs/a%00b"),
        ("DELETE", "/v1/admin/models/a%00b"),
        ("POST", "/v1/admin/models/a%00b/retrain"),
        ("POST", "/v1/admin/models/a%00b/rollback"),
    ):
        r = client.request(method, url, headers=ADMIN)
        assert r.status_code == 404, (method, url, r.text)
