"""/openapi.json: FastAPI's document of its own routes, plus predict and infer, which
api.fastpath answers in front of FastAPI and which are documented here from api.schemas.

Error answers are documented per status with an example, in each protocol's shape; feedback's
route takes them through `failures`, the serving operations through `serving_paths`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import auth, schemas

Shape = Literal["v1", "v2"]
REF = "#/components/schemas/{model}"

INVALID_INSTANCES = [
    {
        "loc": ["body", "instances", 0, "x1"],
        "msg": "must be a finite number or null",
        "row": 0,
        "field": "instances[0].x1",
    }
]
INVALID_LABELS = [
    {
        "loc": ["body", "labels", 0, "label"],
        "msg": "unknown class 'perhaps'",
        "row": 0,
        "field": "labels[0].label",
    }
]
# status: (when, an example of its detail)
STATUSES: dict[int, tuple[str, Any]] = {
    400: (
        "The inference request is malformed or does not fit the model's inputs.",
        "input 'color': categorical feature needs BYTES",
    ),
    401: ("LOOPSERVE_API_KEYS is set and no valid key was given.", auth.KEY_REQUIRED),
    404: (
        "No model of that name, or a version other than the one served.",
        "model 'nope' not found",
    ),
    413: (
        "More rows than LOOPSERVE_MAX_BATCH_ROWS.",
        "10001 rows exceed the limit of 10000 rows per request",
    ),
    422: ("Invalid input: every offending row and field is listed.", INVALID_INSTANCES),
    503: (
        "No champion loaded yet, the champion's artifact failed to load, or the database is "
        "down or not keeping up; the message says what to do.",
        "model churn has no champion loaded yet: upload labelled data and retrain it "
        "(POST /v1/admin/models/churn/retrain), then retry",
    ),
}


def failures(
    shape: Shape, *statuses: int, invalid: list[dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for these error statuses, with an example each; `invalid` replaces
    the example problems of a 422."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        when, detail = STATUSES[status]
        if status == 422 and invalid is not None:
            detail = invalid
        model: type[BaseModel] = schemas.ErrorV1 if shape == "v1" else schemas.ErrorV2
        example = {"detail": detail} if shape == "v1" else {"error": detail}
        out[status] = {
            "model": model,
            "description": when,
            "content": {"application/json": {"example": example}},
        }
    return out


FEEDBACK_EXAMPLES = {
    "by features": {
        "summary": "A label with the row's features",
        "value": {"labels": [{"features": schemas.EXAMPLE_ROW, "label": "yes"}]},
    }
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "example": schemas.EXAMPLE_MODEL,
}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "example": "1",
}


def serving_paths(document: dict[str, Any]) -> None:
    """Add predict and infer, and the schemas they use, to FastAPI's `document`."""
    _, defs = models_json_schema(
        [
            (schemas.PredictRequest, "validation"),
            (schemas.InferenceRequest, "validation"),
            (schemas.PredictResponse, "serialization"),
            (schemas.InferenceResponse, "serialization"),
            (schemas.ErrorV1, "serialization"),
            (schemas.ErrorV2, "serialization"),
        ],
        ref_template=REF,
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in defs["$defs"].items():
        components.setdefault(name, schema)
    predict = _operation(
        "v1",
        "predict",
        "Predict",
        "One ONNX call of the model's champion on the rows; every prediction gets an id to "
        "post its true label with (feedback).",
        schemas.PredictRequest,
        schemas.PredictResponse,
        [_NAME],
        [401, 404, 413, 422, 503],
    )
    infer = "One ONNX call of the champion on the request's tensors (Open Inference Protocol, "
    infer += "JSON tensors; tritonclient's binary tensor extension is accepted too)."
    paths = {}
    for path, item in document.get("paths", {}).items():
        if path == "/v1/models/{name}/feedback":  # predict first, as the loop goes
            paths["/v1/models/{name}/predict"] = {"post": predict}
        paths[path] = item
    paths.setdefault("/v1/models/{name}/predict", {"post": predict})
    statuses = [400, 401, 404, 413, 503]
    paths["/v2/models/{name}/infer"] = {
        "post": _operation(
            "v2",
            "infer",
            "Infer",
            infer,
            schemas.InferenceRequest,
            schemas.InferenceResponse,
            [_NAME],
            statuses,
        )
    }
    paths["/v2/models/{name}/versions/{version}/infer"] = {
        "post": _operation(
            "v2",
            "infer_version",
            "Infer (a version)",
            infer + " The version must be the one served.",
            schemas.InferenceRequest,
            schemas.InferenceResponse,
            [_NAME, _VERSION],
            statuses,
        )
    }
    document["paths"] = paths


def _operation(
    shape: Shape,
    operation_id: str,
    summary: str,
    description: str,
    request: type[BaseModel],
    response: type[BaseModel],
    parameters: list[dict[str, Any]],
    statuses: list[int],
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "Successful Response",
            "content": {
                "application/json": {
                    "schema": _ref(response),
                    "example": _example(response),
                }
            },
        }
    }
    for status, spec in failures(shape, *statuses).items():
        content = spec["content"]["application/json"]
        responses[str(status)] = {
            "description": spec["description"],
            "content": {"application/json": {"schema": _ref(spec["model"]), **content}},
        }
    return {
        "tags": ["models"] if shape == "v1" else ["open inference protocol"],
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref(request),
                    "examples": {"example": {"value": _example(request)}},
                }
            },
        },
        "responses": responses,
        "security": [{"HTTPBearer": []}],
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _example(model: type[BaseModel]) -> Any:
    return model.model_json_schema()["examples"][0]
