"""The one rule for class names, and the sentinel of a missing category.

Shared by the API's edge (tuning.spec validates labels as they arrive), the training frames
(tuning.data) and serving (api), so a class is spelled the same everywhere. No numpy or
pandas import: the API and the registry import it.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "__missing__"  # a missing categorical value, in training frames and ONNX inputs


def class_name(value: Any) -> str:
    """The canonical name of a class label: 1, 1.0, "1" and numpy's 1 are all "1"; True is
    "True". ValueError for a missing, empty or non-finite label."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # a numpy scalar
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError("a class label must not be missing")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            raise ValueError(f"a class label must be finite, got {value!r}")
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        if not value:
            raise ValueError("a class label must not be empty")
        return value
    raise ValueError(f"a class label must be a string or a number, got {type(value).__name__}")
