"""Build a scikit-learn pipeline from a search configuration.

Every pipeline takes the raw feature frame (see tuning.data) and only uses steps that skl2onnx
converts with label parity: a ColumnTransformer by column name (numeric: imputer, optional
pairwise interactions, scaler; categorical: one-hot with unknown categories ignored), an
optional univariate selection, then one estimator of a family named in tuning.spec.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_selection import SelectPercentile, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)

from tuning.spec import ModelSpec

IMPUTERS = ("median", "mean")
SCALERS = ("standard", "robust", "minmax", "none")
ENCODINGS = ("onehot",)
# Trees are invariant to monotone scaling, and scaling in float64 (sklearn) vs float32 (ONNX)
# only adds rounding right at split thresholds, so tree families never get a scaler.
TREE_FAMILIES = ("random_forest", "gradient_boosting")

PREPROCESSING_DEFAULTS: dict[str, Any] = {
    "imputer": "median",
    "scaler": "standard",
    "encoding": "onehot",
    "interactions": False,
    "select_k": None,
}

# Estimator hyperparameters each family understands, with their defaults.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"C": 1.0, "penalty": "l2"},
    "ridge": {"alpha": 1.0},
    "sgd": {"alpha": 1e-4, "penalty": "l2", "learning_rate": None, "eta0": 0.01},
    "mlp": {"hidden_layer_sizes": (64,), "alpha": 1e-4, "learning_rate_init": 1e-3},
    "random_forest": {
        "n_estimators": 51,
        "max_depth": 12,
        "min_samples_leaf": 1,
        "max_features": "sqrt",
    },
    "gradient_boosting": {
        "n_estimators": 100,
        "learning_rate": 0.1,
        "max_depth": 3,
        "subsample": 1.0,
    },
}

MLP_MAX_ITER = 200
SGD_MAX_ITER = 1000


def resolve_config(spec: ModelSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The complete, canonical config a pipeline is built from.

    Drops keys that do not belong to the family, fills defaults, forces scaler "none" for
    trees and rounds an even random-forest size up to odd (an even forest ties at exactly 0.5,
    which sklearn and ONNX break differently). Raises ValueError on unknown choices.
    """
    family = config.get("family")
    if family not in spec.all_families:
        raise ValueError(f"family {family!r} is not one of {list(spec.all_families)}")
    out: dict[str, Any] = {"family": family}
    for key, default in PREPROCESSING_DEFAULTS.items():
        out[key] = config.get(key, default)
    for key, default in FAMILY_DEFAULTS[family].items():
        out[key] = config.get(key, default)
    if out["imputer"] not in IMPUTERS:
        raise ValueError(f"imputer {out['imputer']!r} is not one of {list(IMPUTERS)}")
    if out["scaler"] not in SCALERS:
        raise ValueError(f"scaler {out['scaler']!r} is not one of {list(SCALERS)}")
    if out["encoding"] not in ENCODINGS:
        raise ValueError(f"encoding {out['encoding']!r} is not one of {list(ENCODINGS)}")
    k = out["select_k"]
    if k is not None and not 0 < float(k) <= 1:
        raise ValueError(f"select_k must be None or a fraction in (0, 1], got {k!r}")
    out["interactions"] = bool(out["interactions"])
    if family in TREE_FAMILIES:
        out["scaler"] = "none"
    if family == "random_forest" and int(out["n_estimators"]) % 2 == 0:
        out["n_estimators"] = int(out["n_estimators"]) + 1
    if family in ("logistic", "sgd") and out["penalty"] not in ("l1", "l2", "elasticnet"):
        raise ValueError(f"penalty {out['penalty']!r} is not l1, l2 or elasticnet")
    if family == "mlp":
        out["hidden_layer_sizes"] = tuple(int(h) for h in out["hidden_layer_sizes"])
    return out


def _scaler(name: str) -> Any:
    return {
        "standard": StandardScaler(),
        "robust": RobustScaler(),
        "minmax": MinMaxScaler(),
    }[name]


def _preprocessor(spec: ModelSpec, cfg: dict[str, Any]) -> ColumnTransformer:
    parts: list[tuple[str, Any, list[str]]] = []
    if spec.numeric_features:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=cfg["imputer"]))]
        if cfg["interactions"] and len(spec.numeric_features) > 1:
            steps.append(
                (
                    "interactions",
                    PolynomialFeatures(degree=2, interaction_only=True, include_bias=False),
                )
            )
        if cfg["scaler"] != "none":
            steps.append(("scale", _scaler(cfg["scaler"])))
        parts.append(("num", Pipeline(steps), spec.numeric_features))
    if spec.categorical_features:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=float)
        parts.append(("cat", onehot, spec.categorical_features))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0, n_jobs=None)


def _estimator(spec: ModelSpec, cfg: dict[str, Any], random_state: int) -> Any:
    family, clf = cfg["family"], spec.task == "classification"
    if family == "logistic":
        l1_ratio = {"l2": 0.0, "l1": 1.0, "elasticnet": 0.5}[cfg["penalty"]]
        return LogisticRegression(
            C=float(cfg["C"]),
            l1_ratio=l1_ratio,
            solver="lbfgs" if l1_ratio == 0 else "saga",
            max_iter=300,
            random_state=random_state,
        )
    if family == "ridge":
        return Ridge(alpha=float(cfg["alpha"]), random_state=random_state)
    if family == "sgd":
        kwargs: dict[str, Any] = {
            "alpha": float(cfg["alpha"]),
            "penalty": cfg["penalty"],
            "eta0": float(cfg["eta0"]),
            "max_iter": SGD_MAX_ITER,
            "tol": 1e-3,
            "random_state": random_state,
        }
        if cfg["learning_rate"] is not None:
            kwargs["learning_rate"] = cfg["learning_rate"]
        if clf:
            return SGDClassifier(loss="log_loss", **kwargs)
        return SGDRegressor(loss="squared_error", **kwargs)
    if family == "mlp":
        cls = MLPClassifier if clf else MLPRegressor
        return cls(
            hidden_layer_sizes=cfg["hidden_layer_sizes"],
            alpha=float(cfg["alpha"]),
            learning_rate_init=float(cfg["learning_rate_init"]),
            solver="adam",
            max_iter=MLP_MAX_ITER,
            random_state=random_state,
        )
    if family == "random_forest":
        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(
            n_estimators=int(cfg["n_estimators"]),
            max_depth=None if cfg["max_depth"] is None else int(cfg["max_depth"]),
            min_samples_leaf=int(cfg["min_samples_leaf"]),
            max_features=cfg["max_features"],
            n_jobs=1,
            random_state=random_state,
        )
    if family == "gradient_boosting":
        cls = GradientBoostingClassifier if clf else GradientBoostingRegressor
        return cls(
            n_estimators=int(cfg["n_estimators"]),
            learning_rate=float(cfg["learning_rate"]),
            max_depth=int(cfg["max_depth"]),
            subsample=float(cfg["subsample"]),
            random_state=random_state,
        )
    raise ValueError(f"unknown family {family!r}")  # pragma: no cover - resolve_config guards


def build_pipeline(spec: ModelSpec, config: dict[str, Any], *, random_state: int) -> Pipeline:
    """An unfitted pipeline for ``config`` (see resolve_config for what is accepted).

    Takes the raw feature frame (tuning.data.frame / normalize), columns selected by name.
    """
    cfg = resolve_config(spec, config)
    steps: list[tuple[str, Any]] = [("pre", _preprocessor(spec, cfg))]
    if cfg["select_k"] is not None and float(cfg["select_k"]) < 1:
        score_func = f_classif if spec.task == "classification" else f_regression
        percentile = 100.0 * float(cfg["select_k"])
        steps.append(("select", SelectPercentile(score_func, percentile=percentile)))
    steps.append(("model", _estimator(spec, cfg, random_state)))
    return Pipeline(steps)
