"""tuning.persist: skops round trips for every family, with an explicit allow-list."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tests.tuning.tuning_factories import make_data, make_spec
from tuning import persist
from tuning.export import predict_sklearn
from tuning.fitting import fit_quietly
from tuning.pipeline import build_pipeline
from tuning.spec import CLASSIFICATION_FAMILIES, REGRESSION_FAMILIES
from tuning.warm import continue_training

CASES = [("classification", f) for f in CLASSIFICATION_FAMILIES] + [
    ("regression", f) for f in REGRESSION_FAMILIES
]
SMALL = {"n_estimators": 15, "max_depth": 4, "hidden_layer_sizes": (8,)}


@pytest.mark.parametrize(("task", "family"), CASES)
def test_round_trip_every_family(task: str, family: str) -> None:
    spec = make_spec(task)
    X, y = make_data(spec, 300, n_classes=3) if task == "classification" else make_data(spec, 300)
    config = {"family": family, "select_k": 0.5, "interactions": True, **SMALL}
    pipe = fit_quietly(build_pipeline(spec, config, random_state=0), X, y)
    if family in ("sgd", "mlp"):
        pipe = continue_training(pipe, X[:50], y[:50], epochs=2)  # optimizer state too
    loaded = persist.loads(persist.dumps(pipe))
    a, b = predict_sklearn(pipe, X), predict_sklearn(loaded, X)
    np.testing.assert_array_equal(a.labels, b.labels)
    if a.proba is not None:
        np.testing.assert_array_equal(a.proba, b.proba)


def _double(x: np.ndarray) -> np.ndarray:
    return 2 * x


def test_untrusted_types_are_refused() -> None:
    pipe = Pipeline([("f", FunctionTransformer(_double)), ("m", LogisticRegression())])
    pipe.fit(np.abs(np.random.default_rng(0).normal(size=(20, 2))), [0, 1] * 10)
    with pytest.raises(persist.UntrustedModelError, match="untrusted"):
        persist.loads(sio.dumps(pipe))


def test_only_pipelines_load() -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(persist.UntrustedModelError, match="Pipeline"):
        persist.loads(sio.dumps(model))
