"""tuning.data: the feature-frame and target conventions every package relies on."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.tuning.tuning_factories import make_spec
from tuning import data


def test_frame_types_missing_values_and_sentinel() -> None:
    spec = make_spec(n_numeric=2)
    rows = [
        {"x0": 1, "x1": 2.5, "region": "north", "y": 1, "id": "ignored"},
        {"x0": None, "region": None},
        {"x1": float("nan"), "region": float("nan")},
        {"x0": "3.5", "x1": 0, "region": 7},
    ]
    X = data.frame(spec, rows)
    assert list(X.columns) == spec.feature_names
    assert X["x0"].dtype == np.float64 and X["x1"].dtype == np.float64
    assert X["region"].dtype == object
    assert X["x0"].tolist()[0] == 1.0 and math.isnan(X["x0"][1]) and X["x0"][3] == 3.5
    assert math.isnan(X["x1"][1]) and math.isnan(X["x1"][2])
    assert X["region"].tolist() == ["north", data.MISSING, data.MISSING, "7"]
    assert all(type(v) is str for v in X["region"])


def test_frame_rejects_non_numbers() -> None:
    spec = make_spec(n_numeric=1)
    with pytest.raises(ValueError, match="x0"):
        data.frame(spec, [{"x0": "abc", "region": "a"}])
    with pytest.raises(ValueError, match="boolean"):
        data.frame(spec, [{"x0": True, "region": "a"}])
    with pytest.raises(ValueError, match="finite"):
        data.frame(spec, [{"x0": float("inf"), "region": "a"}])


def test_normalize_is_idempotent_and_accepts_pandas_strings() -> None:
    spec = make_spec(n_numeric=2)
    raw = pd.DataFrame(
        {
            "region": pd.array(["a", None, "b"], dtype="str"),
            "x1": [1, 2, None],
            "x0": pd.array([1, None, 3], dtype="Int64"),
            "extra": [0, 0, 0],
        },
        index=[10, 11, 12],
    )
    X = data.normalize(spec, raw)
    assert list(X.columns) == spec.feature_names
    assert X["region"].tolist() == ["a", data.MISSING, "b"]
    assert X["x0"].dtype == np.float64 and math.isnan(X["x0"][1])
    pd.testing.assert_frame_equal(data.normalize(spec, X), X)
    with pytest.raises(ValueError, match="missing feature columns"):
        data.normalize(spec, raw.drop(columns=["x1"]))


def test_target_classification_labels_are_canonical_strings() -> None:
    spec = make_spec()
    y = data.target(spec, [1, 1.0, "1", 2.5, np.int64(3), np.float64(4.0), "cat", True])
    assert y.dtype == object
    assert y.tolist() == ["1", "1", "1", "2.5", "3", "4", "cat", "True"]
    with pytest.raises(ValueError):
        data.target(spec, [None])


def test_target_regression_is_float64_and_complete() -> None:
    spec = make_spec("regression")
    y = data.target(spec, [1, "2.5", 3.0])
    assert y.dtype == np.float64 and y.tolist() == [1.0, 2.5, 3.0]
    with pytest.raises(ValueError, match="missing"):
        data.target(spec, [1.0, None])


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (1, "1"),
        (1.0, "1"),
        ("1", "1"),
        (np.int64(1), "1"),
        (2.5, "2.5"),
        (True, "True"),
        (np.bool_(False), "False"),
        ("yes", "yes"),
    ],
)
def test_one_rule_for_class_names_at_the_edge_and_in_training(value: object, name: str) -> None:
    spec = make_spec("classification")
    assert spec.normalise_label(value) == name  # a label as it arrives over HTTP
    assert data.target(spec, [value]).tolist() == [name]  # the same label in a training frame


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "", [1]])
def test_a_class_label_must_be_present_finite_and_scalar(value: object) -> None:
    spec = make_spec("classification")
    with pytest.raises(ValueError):
        spec.normalise_label(value)


def test_a_category_is_spelled_like_a_class_and_anything_else_is_its_text() -> None:
    assert [data.category(v) for v in (1.0, np.int64(2), True, "x")] == ["1", "2", "True", "x"]
    assert data.category(None) == data.MISSING
    assert data.category([1, 2]) == "[1, 2]"  # not a class label: no error, its text
