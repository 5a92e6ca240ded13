"""Checks rows against a model's spec before anything is served or stored.

Every problem names its row and field, so a client can fix a batch in one round trip.
"""

from __future__ import annotations

import math
from typing import Any

from registry.errors import InvalidData, clip, excerpt
from registry.models import storable
from tuning.spec import MAX_NAME_LENGTH, ModelSpec

Problem = dict[str, Any]


def feature_problems(spec: ModelSpec, row: Any, index: int, *, field: str) -> list[Problem]:
    """Problems of one feature mapping: missing, unknown or wrongly typed features.

    A feature may be null (missing value, imputed by the pipeline) but must be present.
    """
    if not isinstance(row, dict):
        return [_p(index, field, "must be an object of feature values")]
    problems = [
        _p(index, f"{field}.{clip(str(name))}", "unknown feature")
        for name in row
        if name not in spec.feature_names and name != spec.target
    ]
    for feature in spec.features:
        if feature.name not in row:
            problems.append(_p(index, f"{field}.{feature.name}", "missing feature"))
            continue
        value = row[feature.name]
        if value is None:
            continue
        if feature.type == "numeric":
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            # NaN too: a CSV cell `nan` reads as one, and no JSON column can store it
            if not numeric or (isinstance(value, float) and not math.isfinite(value)):
                problems.append(
                    _p(index, f"{field}.{feature.name}", "must be a finite number or null")
                )
        elif not isinstance(value, str):
            problems.append(_p(index, f"{field}.{feature.name}", "must be a string or null"))
    return problems


def check_instances(spec: ModelSpec, instances: list[Any], *, field: str = "instances") -> None:
    """Raise InvalidData listing every bad row and field of a predict request."""
    problems: list[Problem] = []
    for i, row in enumerate(instances):
        problems.extend(feature_problems(spec, row, i, field=f"{field}[{i}]"))
    if problems:
        raise InvalidData(f"{len(problems)} invalid value(s) in {field}", problems)


def label_problem(
    spec: ModelSpec, value: Any, classes: set[str] | None, index: int, field: str
) -> tuple[str | float | None, Problem | None]:
    """Normalise a label; return a problem instead when it is invalid or an unknown class."""
    try:
        label = spec.normalise_label(value)
    except ValueError as exc:
        return None, _p(index, field, str(exc))
    if classes is not None and label not in classes:
        return None, _p(
            index, field, f"unknown class {excerpt(label)}; known: {excerpt(sorted(classes))}"
        )
    if isinstance(label, str) and (len(label) > MAX_NAME_LENGTH or not storable(label)):
        # a new class would be one of the model's classes, served as text and stored as such
        why = f"a class label has at most {MAX_NAME_LENGTH} characters and no NUL character"
        return None, _p(index, field, why)
    return label, None


def _p(index: int, field: str, message: str) -> Problem:
    return {"row": index, "field": field, "message": message}
