"""Safe persistence of fitted pipelines with skops (never pickle).

Loading trusts skops' defaults (scikit-learn's own estimators, builtins) plus the explicit
allow-list below: exactly the extra types the pipelines of tuning.pipeline contain. A file that
declares any other type is refused, whatever it asks to be trusted with.
"""

from __future__ import annotations

import skops.io as sio
from sklearn.pipeline import Pipeline

# Measured with skops.io.get_untrusted_types over every family, task and preprocessing variant.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.tree._tree.Tree",
)


class UntrustedModelError(ValueError):
    """The bytes declare types outside the allow-list; nothing was loaded."""


def dumps(pipeline: Pipeline) -> bytes:
    """Serialize a fitted pipeline with skops."""
    return sio.dumps(pipeline)


def loads(data: bytes) -> Pipeline:
    """Load a pipeline written by ``dumps``; refuse any type outside the allow-list."""
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise UntrustedModelError(f"refusing to load untrusted types: {sorted(untrusted)}")
    obj = sio.loads(data, trusted=list(TRUSTED_TYPES))
    if not isinstance(obj, Pipeline):
        raise UntrustedModelError(f"expected a sklearn Pipeline, got {type(obj).__name__}")
    return obj
