"""Safe persistence of fitted pipelines with skops (never pickle).

Loading trusts skops' defaults (scikit-learn's own estimators, builtins) plus the explicit
allow-list below: exactly the extra types the pipelines of tuning.pipeline contain. A file that
declares any other type is refused, whatever it asks to be trusted with.

A fused pipeline (tuning.fusion: one VotingClassifier/VotingRegressor step over fitted member
pipelines) is stored without its ``named_estimators_`` (a Bunch of the very members in
``estimators_``, which skops would write a second time, and a type the allow-list would have
to grow for); loads() rebuilds it from ``estimators`` and ``estimators_``.
"""

from __future__ import annotations

import copy

import skops.io as sio
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch

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


def _voting_step(pipeline: Pipeline) -> VotingClassifier | VotingRegressor | None:
    last = pipeline.steps[-1][1] if isinstance(pipeline, Pipeline) and pipeline.steps else None
    return last if isinstance(last, VotingClassifier | VotingRegressor) else None


def _without_named_estimators(pipeline: Pipeline) -> Pipeline:
    """A shallow copy whose voting step lacks named_estimators_ (``pipeline`` is untouched)."""
    voting = _voting_step(pipeline)
    if voting is None or "named_estimators_" not in vars(voting):
        return pipeline
    voting = copy.copy(voting)
    del voting.named_estimators_
    out = copy.copy(pipeline)
    out.steps = [*pipeline.steps[:-1], (pipeline.steps[-1][0], voting)]
    return out


def _restore_named_estimators(pipeline: Pipeline) -> None:
    voting = _voting_step(pipeline)
    if voting is None or not hasattr(voting, "estimators_"):
        return
    names = [name for name, est in voting.estimators if est != "drop"]
    voting.named_estimators_ = Bunch(**dict(zip(names, voting.estimators_, strict=True)))


def dumps(pipeline: Pipeline) -> bytes:
    """Serialize a fitted pipeline with skops."""
    return sio.dumps(_without_named_estimators(pipeline))


def loads(data: bytes) -> Pipeline:
    """Load a pipeline written by ``dumps``; refuse any type outside the allow-list."""
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise UntrustedModelError(f"refusing to load untrusted types: {sorted(untrusted)}")
    obj = sio.loads(data, trusted=list(TRUSTED_TYPES))
    if not isinstance(obj, Pipeline):
        raise UntrustedModelError(f"expected a sklearn Pipeline, got {type(obj).__name__}")
    _restore_named_estimators(obj)
    return obj
