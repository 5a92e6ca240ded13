"""The request and response types of predict, infer and feedback, and of the Open Inference
Protocol's health and metadata routes, from which /openapi.json documents them (api.openapi).
The platform's other routes have theirs in api.records.

Feedback is validated by `FeedbackRequest`; the rows' values are then checked against the
model's spec by the registry, which names every offending row and field. Predict and infer are
parsed by msgspec and orjson in api.fastpath, never by these models (per-value pydantic
objects would cost more than the ONNX call): here they describe that contract, and a test holds
real answers to it (tests/api/test_openapi.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

# What the examples are written for: a classifier served as "churn" with the numeric features
# x1..x4 and the categorical feature color (the tests serve such a model).
EXAMPLE_MODEL = "churn"
EXAMPLE_ROW: dict[str, Any] = {
    "x1": 0.52,
    "x2": -1.3,
    "x3": 0.07,
    "x4": 2.0,
    "color": "red",
}
EXAMPLE_ID = "3f2b9c0e8a7d4e6f9b1c2d3e4f5a6b7c"


def _value(value: Any) -> Any:
    """A JSON scalar, passed on as it is: whether it fits its feature is the spec's to say."""
    if value is None or isinstance(value, str | int | float):
        return value
    raise PydanticCustomError("feature_value", "must be a number, a string or null")


def _label(value: Any) -> Any:
    if isinstance(value, str | int | float):  # bool is an int
        return value
    raise PydanticCustomError("label_value", "must be a string, a number or a boolean")


FeatureValue = Annotated[
    float | str | None, PlainValidator(_value, json_schema_input_type=float | str | None)
]
Label = Annotated[
    str | float | bool, PlainValidator(_label, json_schema_input_type=str | float | bool)
]


class Problem(BaseModel):
    """One offending part of a request."""

    loc: list[str | int] = Field(description="Where, from the body down.")
    msg: str = Field(description="What is wrong.")
    row: int | None = Field(default=None, description="Index of the offending row or label.")
    field: str | None = Field(
        default=None, description="The offending field as a path, e.g. `instances[2].x1`."
    )
    type: str | None = Field(default=None, description="Kind of a structural error.")


class ErrorV1(BaseModel):
    """The v1 error: a message, or for invalid input every problem found."""

    detail: str | list[Problem]


class ErrorV2(BaseModel):
    """The Open Inference Protocol's error."""

    error: str


class PredictRequest(BaseModel):
    instances: list[dict[str, FeatureValue]] = Field(
        min_length=1,
        description="Rows of `{feature: value}` with every feature of the model: numbers for "
        "numeric features, strings for categorical ones, null when missing. At most "
        "LOOPSERVE_MAX_BATCH_ROWS rows.",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"instances": [EXAMPLE_ROW]}]})


class Prediction(BaseModel):
    id: str = Field(description="The prediction id: post it back with the true label.")
    label: str | float = Field(description="The predicted class, or a regressor's value.")
    probabilities: dict[str, float] | None = Field(
        default=None, description="Each class's probability (classifiers only)."
    )


class PredictResponse(BaseModel):
    model: str
    version: int = Field(description="The champion version that answered.")
    predictions: list[Prediction] = Field(description="One per instance, in order.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": EXAMPLE_MODEL,
                    "version": 3,
                    "predictions": [
                        {
                            "id": EXAMPLE_ID,
                            "label": "yes",
                            "probabilities": {"no": 0.18, "yes": 0.82},
                        }
                    ],
                }
            ]
        }
    )


# A TypedDict rather than a model: the registry takes the labels as dicts, and pydantic checks
# a thousand of these in about a millisecond (models and their dump take four times as long).
@with_config(
    ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["prediction_id"]}, {"required": ["features"]}],
            "examples": [{"prediction_id": EXAMPLE_ID, "label": "yes"}],
        }
    )
)
class FeedbackLabel(TypedDict):
    """The true label of a prediction, named by its id or given with the features."""

    prediction_id: NotRequired[
        Annotated[
            str | None, Field(description="The `id` predict (or infer's `prediction_id`) answered.")
        ]
    ]
    features: NotRequired[
        Annotated[
            dict[str, FeatureValue] | None,
            Field(description="Instead of an id: the row's features, as predict takes them."),
        ]
    ]
    label: Annotated[Label, Field(description="The true class, or a regressor's true value.")]


class FeedbackRequest(BaseModel):
    labels: list[FeedbackLabel] = Field(
        min_length=1,
        description="Stored all or nothing; a prediction id labelled again counts once (the "
        "last label wins).",
    )


class FeedbackAccepted(BaseModel):
    accepted: int = Field(description="Labels stored, committed before this answer.")


# The Open Inference Protocol (KServe V2) over REST, as far as this server implements it.
Datatype = Literal["FP32", "FP64", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT8", "BYTES"]
TensorData = list[Any]


class RequestInput(BaseModel):
    name: str = Field(description="A feature, or any name for one `[N, features]` tensor.")
    shape: list[int]
    datatype: Datatype = Field(description="A numeric type, or BYTES for categorical features.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_size` when the data follows the JSON header."
    )
    data: TensorData | None = Field(
        default=None, description="The values in row-major order, flat or nested."
    )


class RequestOutput(BaseModel):
    name: Literal["label", "probabilities", "variable", "prediction_id"]
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data: true` for the binary tensor extension."
    )


class InferenceRequest(BaseModel):
    id: str | float | None = Field(
        default=None, description="Echoed in the answer; a number is taken as its text."
    )
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(
        default=None, description="The outputs wanted; all of them when absent."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "request-1",
                    "inputs": [
                        {"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": [0.52]},
                        {"name": "x2", "datatype": "FP32", "shape": [1, 1], "data": [-1.3]},
                        {"name": "x3", "datatype": "FP32", "shape": [1, 1], "data": [None]},
                        {"name": "x4", "datatype": "FP32", "shape": [1, 1], "data": [2.0]},
                        {"name": "color", "datatype": "BYTES", "shape": [1, 1], "data": ["red"]},
                    ],
                }
            ]
        }
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Literal["FP32", "BYTES"]
    parameters: dict[str, Any] | None = None
    data: TensorData | None = Field(
        default=None, description="Flat, row-major; absent when sent as binary data."
    )


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model_name": EXAMPLE_MODEL,
                    "model_version": "3",
                    "id": "request-1",
                    "outputs": [
                        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["yes"]},
                        {
                            "name": "probabilities",
                            "datatype": "FP32",
                            "shape": [1, 2],
                            "data": [0.18, 0.82],
                        },
                        {
                            "name": "prediction_id",
                            "datatype": "BYTES",
                            "shape": [1],
                            "data": [EXAMPLE_ID],
                        },
                    ],
                }
            ]
        },
    )


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(description="Protocol extensions this server implements.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "loopserve", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
            ]
        }
    )


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool = Field(description="Whether the champions were loaded (503 until they are).")


class TensorMetadata(BaseModel):
    name: str
    datatype: Literal["FP32", "BYTES"]
    shape: list[int] = Field(description="-1 is the batch dimension.")


class ModelMetadata(BaseModel):
    """What is served: one input per feature, the outputs infer can answer."""

    name: str
    versions: list[str] = Field(description="The version served (the champion's).")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": EXAMPLE_MODEL,
                    "versions": ["3"],
                    "platform": "onnxruntime_onnx",
                    "inputs": [
                        {"name": "x1", "datatype": "FP32", "shape": [-1, 1]},
                        {"name": "x2", "datatype": "FP32", "shape": [-1, 1]},
                        {"name": "x3", "datatype": "FP32", "shape": [-1, 1]},
                        {"name": "x4", "datatype": "FP32", "shape": [-1, 1]},
                        {"name": "color", "datatype": "BYTES", "shape": [-1, 1]},
                    ],
                    "outputs": [
                        {"name": "label", "datatype": "BYTES", "shape": [-1]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                        {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
                    ],
                }
            ]
        }
    )


class ModelReady(BaseModel):
    name: str
    ready: bool = Field(
        description="Whether this replica serves the model's champion (of that version)."
    )
