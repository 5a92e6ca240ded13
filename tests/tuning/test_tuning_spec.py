"""Every number in a spec is bounded, so no stored spec can carry a value the loop cannot
compute with or the API cannot encode."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tuning.spec import ModelSpec

BASE: dict[str, Any] = {
    "name": "m",
    "task": "classification",
    "target": "y",
    "features": [{"name": "x", "type": "numeric"}],
}


@pytest.mark.parametrize(
    ("section", "values", "field"),
    [
        ("retrain", {"schedule_seconds": 1e300}, "retrain.schedule_seconds"),
        ("retrain", {"seed": 2**64}, "retrain.seed"),
        ("retrain", {"seed": -1}, "retrain.seed"),
        ("retrain", {"max_seconds": float("inf")}, "retrain.max_seconds"),
        ("retrain", {"min_new_labels": 10**12}, "retrain.min_new_labels"),
        ("retrain", {"windows": [10**12]}, "retrain.windows"),
        ("retrain", {"windows": [100] * 11}, "retrain.windows"),
        ("retrain", {"drift_cooldown_seconds": 1e300}, "retrain.drift_cooldown_seconds"),
        ("retrain", {"fixed_params": {"C": 2**64}}, "retrain.fixed_params"),
        ("retrain", {"fixed_params": {"C": float("nan")}}, "retrain.fixed_params"),
        ("retrain", {"fixed_params": {"C": {"nested": 1}}}, "retrain.fixed_params"),
        ("promotion", {"min_holdout": 2**70}, "promotion.min_holdout"),
        ("promotion", {"min_delta": float("inf")}, "promotion.min_delta"),
        ("drift", {"psi_threshold": 1e300}, "drift.psi_threshold"),
        ("drift", {"data_window": 2**64}, "drift.data_window"),
    ],
)
def test_out_of_bounds_numbers_are_refused_naming_the_field(
    section: str, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSpec.model_validate({**BASE, section: values})
    assert field in str(caught.value)


def test_a_valid_spec_is_plain_json_at_its_bounds() -> None:
    spec = ModelSpec.model_validate(
        {
            **BASE,
            "retrain": {
                "schedule_seconds": 366 * 86_400,
                "seed": 2**32 - 1,
                "fixed_params": {"hidden_layer_sizes": [64, 32], "C": 2**53, "scaler": "robust"},
            },
        }
    )
    orjson.dumps(spec.model_dump())  # what the API answers and the registry stores
