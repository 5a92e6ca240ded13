"""The refit search space, and seeded sampling from it.

The space covers feature engineering (imputer, scaler, pairwise interactions, univariate
selection), structure (family, MLP layers) and regularisation (L1/L2, alpha, C). Sampled values
are kept few and sensible so that a small budget explores families rather than noise; anything
in spec.retrain.fixed_params overrides the sampled value.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tuning.pipeline import FAMILY_DEFAULTS, PREPROCESSING_DEFAULTS, TREE_FAMILIES, resolve_config
from tuning.spec import ModelSpec

MAX_INTERACTION_NUMERICS = 20  # 20 numerics give 190 pairwise products; more is not offered.
DRAW_ATTEMPTS = 20  # tries per candidate to draw a configuration not drawn before


def _pick(rng: np.random.Generator, options: list[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(f"{10 ** rng.uniform(np.log10(low), np.log10(high)):.3g}")


def _family_params(spec: ModelSpec, family: str, rng: np.random.Generator) -> dict[str, Any]:
    clf = spec.task == "classification"
    if family == "logistic":
        return {"C": _log_uniform(rng, 1e-2, 1e2), "penalty": _pick(rng, ["l2", "l1"])}
    if family == "ridge":
        return {"alpha": _log_uniform(rng, 1e-3, 1e3)}
    if family == "sgd":
        rates = ["optimal", "adaptive"] if clf else ["invscaling", "adaptive"]
        return {
            "alpha": _log_uniform(rng, 1e-6, 1e-2),
            "penalty": _pick(rng, ["l2", "l1", "elasticnet"]),
            "learning_rate": _pick(rng, rates),
            "eta0": _log_uniform(rng, 1e-3, 1e-1),
        }
    if family == "mlp":
        return {
            "hidden_layer_sizes": _pick(rng, [(32,), (64,), (32, 16), (64, 32)]),
            "alpha": _log_uniform(rng, 1e-5, 1e-2),
            "learning_rate_init": _log_uniform(rng, 3e-4, 1e-2),
        }
    if family == "random_forest":
        return {
            "n_estimators": _pick(rng, [25, 51, 75]),
            "max_depth": _pick(rng, [6, 9, 12]),
            "min_samples_leaf": _pick(rng, [1, 3, 10]),
            "max_features": _pick(rng, ["sqrt", 0.5]),
        }
    if family == "gradient_boosting":
        return {
            "n_estimators": _pick(rng, [50, 100, 150]),
            "learning_rate": _log_uniform(rng, 0.03, 0.3),
            "max_depth": _pick(rng, [2, 3, 4]),
            "subsample": _pick(rng, [1.0, 0.8]),
        }
    raise ValueError(f"unknown family {family!r}")


def _preprocessing(spec: ModelSpec, family: str, rng: np.random.Generator) -> dict[str, Any]:
    n_numeric = len(spec.numeric_features)
    interactions = 2 <= n_numeric <= MAX_INTERACTION_NUMERICS and bool(rng.random() < 0.3)
    scaler = "none" if family in TREE_FAMILIES else _pick(rng, ["standard", "robust", "minmax"])
    return {
        "imputer": _pick(rng, ["median", "mean"]),
        "scaler": scaler,
        "encoding": "onehot",
        "interactions": interactions,
        "select_k": _pick(rng, [None, None, 0.5, 0.75]) if len(spec.features) >= 3 else None,
    }


def known_keys() -> set[str]:
    """Every config key some family understands (plus "family")."""
    keys = {"family", *PREPROCESSING_DEFAULTS}
    for params in FAMILY_DEFAULTS.values():
        keys |= set(params)
    return keys


def jsonable(config: dict[str, Any]) -> dict[str, Any]:
    """The config with tuples as lists, so it survives JSON unchanged."""
    return json.loads(json.dumps(config))


def sample_configs(spec: ModelSpec, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Up to n distinct resolved configurations (fewer when fixed_params leave less room).

    Families are visited round-robin in a seeded order, so a small budget still covers them.
    """
    fixed = dict(spec.retrain.fixed_params)
    unknown = sorted(set(fixed) - known_keys())
    if unknown:
        raise ValueError(f"retrain.fixed_params: unknown keys {unknown}")
    families = list(spec.search_families)
    if "family" in fixed:
        if fixed["family"] not in families:
            raise ValueError(f"fixed family {fixed['family']!r} is not in {families}")
        families = [fixed["family"]]
    order = [families[int(i)] for i in rng.permutation(len(families))]
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(n):
        family = order[i % len(order)]
        for _ in range(DRAW_ATTEMPTS):
            drawn = {"family": family, **_preprocessing(spec, family, rng)}
            drawn.update(_family_params(spec, family, rng))
            drawn.update(fixed)
            config = resolve_config(spec, drawn)
            key = json.dumps(config, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                configs.append(config)
                break
    return configs
