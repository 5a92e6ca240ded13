"""/openapi.json: FastAPI's document of its own routes, plus predict and infer, which
api.fastpath answers in front of FastAPI and which are documented here from api.schemas, and
the bodies the admin routes read themselves (`json_request`, `UPLOAD_BODY`): JSON whatever
its content type, or a CSV.

Error answers are documented per status with an example, in each protocol's shape; the FastAPI
routes take them through `failures`, the serving operations through `serving_paths`. FastAPI's
own 422 (`HTTPValidationError`) describes a body this API never sends: `complete` drops it,
and each route that can answer a 422 declares ours. What is answered in front of every route
(api.guard, api.fastpath) is documented by `complete` on every route it applies to: 401 and
429 wherever a bearer token is taken, 413 wherever a body is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api import auth, errors, limits, records, schemas
from tuning.spec import ModelSpec

Shape = Literal["v1", "v2"]
REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _example(model: type[BaseModel]) -> Any:
    return model.model_json_schema()["examples"][0]


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
        "More rows than LOOPSERVE_MAX_BATCH_ROWS, or a body over LOOPSERVE_MAX_BODY_BYTES.",
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


@dataclass(frozen=True)
class Refusal:
    """An error status of a route: when it is answered, and an example of its detail."""

    status: int
    when: str
    example: Any


# The refusals of the platform's other routes (STATUSES are the serving operations').
ADMIN_TOKEN = Refusal(
    401, "No admin token, or not the admin token (LOOPSERVE_ADMIN_TOKEN).", auth.ADMIN_REQUIRED
)
NO_MODEL = Refusal(404, "No model of that name.", "model 'nope' not found")
NO_MODEL_EVER = Refusal(
    404,
    "No model of that name, and none that the audit log names (a deleted model's entries stay).",
    "model 'nope' not found",
)
NO_VERSION = Refusal(
    404, "No model of that name, or no such version of it.", "model 'churn' has no version 9"
)
NO_JOB = Refusal(404, "No job with that id.", "job '0123456789abcdef0123456789abcdef' not found")
CANNOT_CREATE = Refusal(
    409,
    "A model of that name exists already, or the deployment holds LOOPSERVE_MAX_MODELS models "
    "(the same request succeeds once one is deleted).",
    "model 'churn' exists already",
)
IS_CHAMPION = Refusal(
    409, "The version is the champion already.", "version 2 is the champion already"
)
NO_PREVIOUS = Refusal(
    409,
    "The model has no champion, or no earlier champion to put back.",
    "model 'churn' has no previous champion to roll back to",
)
DATABASE = Refusal(503, "The database is unreachable.", errors.DB_DOWN)
# Answered in front of the routes (api.guard, api.fastpath), documented by `complete`.
KEY_REQUIRED = Refusal(401, STATUSES[401][0], auth.KEY_REQUIRED)
THROTTLED = Refusal(
    429,
    "This client address failed to authenticate too often lately "
    "(LOOPSERVE_AUTH_FAILURES_PER_MINUTE): its requests are refused, whatever token they "
    "carry, until `Retry-After` seconds have passed.",
    str(auth.Throttled(30)),
)
TOO_LARGE = Refusal(
    413, "The body is over LOOPSERVE_MAX_BODY_BYTES.", str(limits.BodyTooLarge(32 * 1024 * 1024))
)
# The headers those answers carry.
ANSWER_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with.",
            "schema": {"type": "string", "const": "Bearer"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Whole seconds until this address may authenticate again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
BROKER = Refusal(
    503,
    "The job is recorded but the broker is unreachable (the job is sent once it is back, "
    "with no restart), or the database is unreachable.",
    "job 9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f is queued but the broker is unreachable "
    "(OperationalError); it is sent again once the broker is back, with no restart needed. "
    "Check LOOPSERVE_BROKER_URL.",
)
NOT_SERVED = Refusal(
    503,
    "No champion of the model is loaded on this replica (yet); the message says why.",
    "model churn has no champion loaded yet: upload labelled data and retrain it "
    "(POST /v1/admin/models/churn/retrain), then retry",
)
INVALID_SPEC = Refusal(
    422,
    "The spec is invalid: every offending field is listed.",
    [
        {
            "loc": ["body", "features", 0, "type"],
            "msg": "Input should be 'numeric' or 'categorical'",
            "type": "literal_error",
            "row": 0,
            "field": "features[0].type",
        }
    ],
)
INVALID_ROWS = Refusal(
    422,
    "The body is not JSON with `rows`, nor a CSV with a header row, or rows do not fit the "
    "spec: every offending row and field is listed.",
    [
        {
            "loc": ["body", "rows", 0, "x1"],
            "msg": "must be a finite number or null",
            "row": 0,
            "field": "rows[0].x1",
        }
    ],
)
INVALID_PROMOTION = Refusal(
    422,
    "The body is not JSON, or `version` is not a version number: each offending field is named.",
    [
        {
            "loc": ["body", "version"],
            "msg": "Input should be a valid integer",
            "type": "int_type",
            "row": None,
            "field": "version",
        }
    ],
)
INVALID_ROLLBACK = Refusal(
    422,
    "The body is neither empty nor a JSON object with a text `reason`.",
    [
        {
            "loc": ["body", "reason"],
            "msg": "Input should be a valid string",
            "type": "string_type",
            "row": None,
            "field": "reason",
        }
    ],
)
INVALID_FILE = Refusal(
    422,
    "No file, or a file that is not a version of this model: neither ONNX nor skops, types "
    "outside the allow-list, inputs, outputs or classes other than the model's, a pipeline "
    "whose ONNX export does not reproduce it, or a query parameter that is not one: each "
    "thing that differs is named.",
    [
        {
            "loc": ["body", "file"],
            "msg": "input 'x1' is tensor(double); the numeric feature needs tensor(float)",
            "row": None,
            "field": "file",
        }
    ],
)
FILE_TOO_LARGE = Refusal(
    413,
    "The file is larger than LOOPSERVE_MAX_BODY_BYTES.",
    "the request body exceeds the limit of 33554432 bytes (LOOPSERVE_MAX_BODY_BYTES)",
)
CORRUPT_ARTIFACT = Refusal(
    500,
    "The version's stored ONNX artifact no longer matches its sha256; nothing is sent.",
    "model 'churn' v1: its ONNX artifact 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c"
    "15b0f00a08 is corrupt (its bytes no longer match their sha256), so it is not sent; "
    "restore the database from a backup",
)
INVALID_QUERY = Refusal(
    422,
    "A query parameter is not a number or out of its range: each is named.",
    [
        {
            "loc": ["query", "window"],
            "msg": "Input should be greater than or equal to 10",
            "type": "greater_than_equal",
            "row": None,
            "field": "window",
        }
    ],
)

INVALID_JOBS_QUERY = Refusal(
    422,
    "A filter or paging parameter is invalid: `status` not a job status, `limit` not between "
    "1 and 500, `cursor` not a `next_cursor` this listing answered. Each is named.",
    [
        {
            "loc": ["query", "status"],
            "msg": "Input should be 'queued', 'running', 'succeeded' or 'failed'",
            "type": "enum",
            "row": None,
            "field": "status",
        }
    ],
)


def failures(
    shape: Shape, *statuses: int | Refusal, invalid: list[dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for these error statuses (by number, as the serving operations
    answer them, or a Refusal), with an example each; `invalid` replaces the example problems
    of a 422."""
    out: dict[int | str, dict[str, Any]] = {}
    for refusal in statuses:
        if isinstance(refusal, Refusal):
            status, when, detail = refusal.status, refusal.when, refusal.example
        else:
            status, (when, detail) = refusal, STATUSES[refusal]
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


SPEC_EXAMPLES = {
    "classifier": {
        "summary": "A classifier over four numbers and a category",
        "value": {
            "name": schemas.EXAMPLE_MODEL,
            "task": "classification",
            "target": records.EXAMPLE_TARGET,
            "features": [
                {"name": "x1", "type": "numeric"},
                {"name": "x2", "type": "numeric"},
                {"name": "x3", "type": "numeric"},
                {"name": "x4", "type": "numeric"},
                {"name": "color", "type": "categorical"},
            ],
        },
    }
}
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


def json_request(
    model: type[BaseModel], *, required: bool = True, examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extra` documenting the JSON body a route reads itself (api.deps.json_model)
    as `model`, with these examples (default: the model's own); `complete` adds the model to
    the document's schemas."""
    shown = examples or {"example": {"value": _example(model)}}
    content = {"schema": _ref(model), "examples": shown}
    return {"requestBody": {"required": required, "content": {"application/json": content}}}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _ref(records.UploadRequest),
                "examples": {"rows": {"value": _example(records.UploadRequest)}},
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "A header row naming every feature and the target, then a "
                    "row per line; numeric features are parsed as numbers, empty cells are "
                    "missing values.",
                },
                "examples": {"csv": {"value": records.EXAMPLE_CSV}},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "contentMediaType": "text/csv",
                            "description": "The CSV, as a text/csv body has it.",
                        }
                    },
                },
            },
        },
    }
}
ONNX_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The version's ONNX graph, byte for byte as the registry stores it "
        "(checked against its sha256 before it is sent).",
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
            }
        },
        "headers": {
            "X-Content-SHA256": {
                "description": "The graph's sha256 in hex: the version's `onnx_sha256`.",
                "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
            "Repr-Digest": {
                "description": "The same sha256 as RFC 9530 has it: `sha-256=:<base64>:`.",
                "schema": {"type": "string"},
            },
            "Content-Disposition": {
                "description": '`attachment; filename="<model>-v<version>.onnx"`.',
                "schema": {"type": "string"},
            },
        },
    }
}
MODEL_FILE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "description": "The file as the body: an ONNX graph, or a scikit-learn "
                    "Pipeline saved with skops (told apart by their bytes; `filename` in the "
                    "query names it for the lineage).",
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "contentMediaType": "application/octet-stream",
                            "description": "The ONNX or skops file, with its name.",
                        }
                    },
                },
            },
        },
    }
}
# The bodies documented here, not by FastAPI: (model, the side of it the document shows).
DOCUMENTED: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (schemas.PredictRequest, "validation"),
    (schemas.InferenceRequest, "validation"),
    (schemas.PredictResponse, "serialization"),
    (schemas.InferenceResponse, "serialization"),
    (schemas.ErrorV1, "serialization"),
    (schemas.ErrorV2, "serialization"),
    (schemas.FeedbackRequest, "validation"),
    (ModelSpec, "validation"),
    (records.UploadRequest, "validation"),
    (records.PromoteRequest, "validation"),
    (records.RollbackRequest, "validation"),
]


def complete(document: dict[str, Any]) -> None:
    """FastAPI's `document` made whole (again, whenever FastAPI rebuilds it): predict and
    infer, the schemas of the bodies documented here, and FastAPI's 422s dropped."""
    if "/v1/models/{name}/predict" in document["paths"]:
        return  # completed when FastAPI built it
    serving_paths(document)
    _, defs = models_json_schema(DOCUMENTED, ref_template=REF)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in defs["$defs"].items():
        components.setdefault(name, schema)
    _restore_examples(components)
    _drop_fastapi_422(document)
    _front_door(document)


def _restore_examples(components: dict[str, Any]) -> None:
    """FastAPI drops every null from its document, the models' examples included (a job's
    `"result": null`): put the models' own examples back."""
    for module in (schemas, records):
        for model in vars(module).values():
            mine = isinstance(model, type) and model.__module__ == module.__name__
            if mine and issubclass(model, BaseModel):
                shown = model.model_json_schema().get("examples")
                if shown and model.__name__ in components:
                    components[model.__name__]["examples"] = shown


def _drop_fastapi_422(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 `HTTPValidationError` for every route with a parameter; this
    API's 422s are ErrorV1 (api.errors), declared by the routes that can answer one."""
    theirs = REF.format(model="HTTPValidationError")
    for item in document["paths"].values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("422")
            if answer and answer["content"]["application/json"]["schema"] == {"$ref": theirs}:
                del operation["responses"]["422"]
    components = document.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


def _front_door(document: dict[str, Any]) -> None:
    """The refusals api.guard and api.fastpath answer before a route sees its request: 401
    and 429 on every operation that takes a bearer token (the admin token or, with
    LOOPSERVE_API_KEYS set, a key), 413 on every operation that takes a body; and the headers
    of each 401 and 429."""
    for path, item in document["paths"].items():
        shape: Shape = "v2" if path == "/v2" or path.startswith("/v2/") else "v1"
        for operation in item.values():
            answers = operation["responses"]
            door = [KEY_REQUIRED, THROTTLED] if "security" in operation else []
            door += [TOO_LARGE] if "requestBody" in operation else []
            for refusal, answer in failures(shape, *door).items():
                content = answer["content"]["application/json"]
                answers.setdefault(
                    str(refusal),
                    {
                        "description": answer["description"],
                        "content": {
                            "application/json": {"schema": _ref(answer["model"]), **content}
                        },
                    },
                )
            for status, headers in ANSWER_HEADERS.items():
                if str(status) in answers:
                    answers[str(status)]["headers"] = headers
            operation["responses"] = dict(sorted(answers.items()))


def serving_paths(document: dict[str, Any]) -> None:
    """Add predict and infer to FastAPI's `document` (their schemas are added by
    `complete`)."""
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
