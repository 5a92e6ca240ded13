"""The v1 codec on models served in-process: large batches are checked as strictly as small
ones, and the answer carries exactly what the graph computed."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import orjson
import pytest

from api.champions import LoadedModel, load_model
from api.codec import decode_body, decode_rows, encode_predictions
from api.dataplane import BatchTooLarge, Served
from api.errors import MalformedInput
from registry.errors import InvalidData
from registry.predlog.ids import prediction_ids
from tuning.data import frame, target
from tuning.export import to_onnx
from tuning.pipeline import build_pipeline
from tuning.spec import ModelSpec

WIDTH = 40  # 20 rows of 40 features: enough values to take numpy's check


def _model(task: str, family: str) -> LoadedModel:
    names = [f"f{i}" for i in range(WIDTH)]
    spec = ModelSpec(
        name=f"wide_{task}",
        task=task,
        target="y",
        features=[{"name": n, "type": "numeric"} for n in names],
        classes=["a", "b", "c"] if task == "classification" else None,
        retrain={"min_new_labels": None},
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, WIDTH))
    score = X[:, 0] + X[:, 1]
    rows = [dict(zip(names, map(float, x), strict=True)) for x in X]
    if task == "classification":
        y: list[Any] = np.select([score < -0.5, score > 0.5], ["a", "c"], "b").tolist()
    else:
        y = score.tolist()
    pipe = build_pipeline(spec, {"family": family}, random_state=0)
    pipe.fit(frame(spec, rows), target(spec, y))
    onnx = to_onnx(pipe, spec)
    classes = ["a", "b", "c"] if task == "classification" else None
    return load_model(spec.name, 1, 3, spec, classes, onnx, hashlib.sha256(onnx).hexdigest(), 1)


@pytest.fixture(scope="module")
def classifier() -> LoadedModel:
    return _model("classification", "logistic")


@pytest.fixture(scope="module")
def regressor() -> LoadedModel:
    return _model("regression", "ridge")


def _rows(n: int, *, binary: bool = False) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2, size=(n, WIDTH)) if binary else rng.normal(size=(n, WIDTH))
    return [{f"f{j}": v for j, v in enumerate(row)} for row in values.tolist()]


@pytest.mark.parametrize("binary", [False, True], ids=["floats", "zeros-and-ones"])
@pytest.mark.parametrize("bad", [True, False, "1.5", [1.0], {"a": 1}], ids=repr)
def test_a_value_that_is_no_number_is_named_in_a_large_batch(classifier, bad, binary) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(20, binary=binary)
    rows[13]["f7"] = bad
    with pytest.raises(InvalidData) as caught:
        decode_rows(classifier, rows)
    assert caught.value.problems == [
        {"row": 13, "field": "instances[13].f7", "message": "must be a finite number or null"}
    ]


def test_every_list_value_is_refused_not_read_as_a_dimension(classifier) -> None:  # type: ignore[no-untyped-def]
    rows = [{f"f{j}": [0.5, 1.5] for j in range(WIDTH)} for _ in range(20)]
    with pytest.raises(InvalidData) as caught:
        decode_rows(classifier, rows)
    assert len(caught.value.problems) == 20 * WIDTH


def test_large_batches_take_ints_nulls_and_refuse_overflow(classifier) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(20)
    rows[2]["f0"], rows[3]["f1"], rows[4]["f2"] = 7, None, 0
    columns = decode_rows(classifier, rows)
    assert columns.numeric.dtype == np.float32 and columns.numeric.shape == (20, WIDTH)
    assert columns.numeric[2, 0] == 7 and np.isnan(columns.numeric[3, 1])
    assert columns.numeric[4, 2] == 0
    expected = np.array([[r[f"f{j}"] for j in range(WIDTH)] for r in rows], dtype=float)
    np.testing.assert_array_equal(columns.numeric, expected.astype(np.float32))
    rows[5]["f3"] = 1e39
    with pytest.raises(InvalidData, match="out of range"):
        decode_rows(classifier, rows)


@pytest.mark.parametrize("n", [1, 20])
def test_the_answer_holds_the_graphs_float32_values(classifier, n) -> None:  # type: ignore[no-untyped-def]
    columns = decode_rows(classifier, _rows(n))
    labels, proba = classifier.run(columns)
    ids = prediction_ids("ab" * 12, n)
    body = orjson.loads(encode_predictions("wide", Served(classifier, ids, labels, proba)))
    assert body["model"] == "wide" and body["version"] == 3
    assert [p["id"] for p in body["predictions"]] == ids
    assert [p["label"] for p in body["predictions"]] == labels.tolist()
    assert all(list(p["probabilities"]) == ["a", "b", "c"] for p in body["predictions"])
    got = np.array([list(p["probabilities"].values()) for p in body["predictions"]])
    np.testing.assert_array_equal(got.astype(np.float32), proba)


def test_a_regressor_answers_its_values_without_probabilities(regressor) -> None:  # type: ignore[no-untyped-def]
    columns = decode_rows(regressor, _rows(20))
    values, proba = regressor.run(columns)
    ids = prediction_ids("cd" * 12, 20)
    body = orjson.loads(encode_predictions("wide", Served(regressor, ids, values, proba)))
    assert all(set(p) == {"id", "label"} for p in body["predictions"])
    got = np.array([p["label"] for p in body["predictions"]], dtype=np.float32)
    np.testing.assert_array_equal(got, values)


def test_labels_that_need_escaping_stay_valid_json(classifier) -> None:  # type: ignore[no-untyped-def]
    columns = decode_rows(classifier, _rows(3))
    _, proba = classifier.run(columns)
    odd = np.array(['say "hi"', "ünï\\", "a"], dtype=object)
    body = orjson.loads(
        encode_predictions("wide", Served(classifier, prediction_ids("0" * 24, 3), odd, proba))
    )
    assert [p["label"] for p in body["predictions"]] == odd.tolist()


class _Plane:
    """The two DataPlane calls decode_body makes, for a model served in-process."""

    def __init__(self, model: LoadedModel, limit: int = 100) -> None:
        self._model, self._limit = model, limit

    def model(self, name: str) -> LoadedModel:
        return self._model

    def check_size(self, n: int) -> None:
        if n > self._limit:
            raise BatchTooLarge(f"{n} rows exceed the limit of {self._limit} rows per request")


@pytest.mark.parametrize("n", [1, 20])
def test_the_typed_decoder_gives_the_columns_of_the_checked_path(classifier, n) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(n)
    rows[0]["f2"], rows[-1]["f3"] = None, 4  # null and int are valid numbers
    _, columns = decode_body(_Plane(classifier), "wide", orjson.dumps({"instances": rows}))
    expected = decode_rows(classifier, rows)
    np.testing.assert_array_equal(columns.numeric, expected.numeric)
    assert columns.n == n and np.isnan(columns.numeric[0, 2])


@pytest.mark.parametrize(
    ("change", "error", "problem"),
    [
        ({"f7": True}, InvalidData, "instances[13].f7"),
        ({"f7": "1.5"}, InvalidData, "instances[13].f7"),
        ({"extra": 1.0}, InvalidData, "instances[13].extra"),
        ({"f7": 1e39}, InvalidData, "instances[13].f7"),
    ],
)
def test_what_the_typed_decoder_refuses_is_named_by_the_checked_path(
    classifier, change, error, problem
) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(20)
    rows[13].update(change)
    with pytest.raises(error) as caught:
        decode_body(_Plane(classifier), "wide", orjson.dumps({"instances": rows}))
    assert [p["field"] for p in caught.value.problems] == [problem]


def test_the_typed_decoder_keeps_the_body_checks(classifier) -> None:  # type: ignore[no-untyped-def]
    plane = _Plane(classifier, limit=10)
    with pytest.raises(BatchTooLarge, match="limit of 10"):
        decode_body(plane, "wide", orjson.dumps({"instances": _rows(11)}))
    with pytest.raises(MalformedInput, match="not valid JSON"):
        decode_body(plane, "wide", b'{"instances": [')
    with pytest.raises(MalformedInput, match="missing field 'instances'"):
        decode_body(plane, "wide", b'{"rows": []}')
    with pytest.raises(InvalidData, match="non-empty"):
        decode_body(plane, "wide", b'{"instances": []}')
    rows = _rows(2)
    rows[1]["f0"] = {"a": 1}
    with pytest.raises(InvalidData):
        decode_body(plane, "wide", orjson.dumps({"instances": rows}))
    rows[1]["y"] = 3.0  # the target beside the features is allowed, as the checked path allows
    rows[1]["f0"] = 0.5
    _, columns = decode_body(plane, "wide", orjson.dumps({"instances": rows}))
    assert columns.n == 2
