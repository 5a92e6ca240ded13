"""Model fusion: several fitted loopserve pipelines as one soft-voting challenger, one ONNX graph.

The fused model is ``Pipeline([("fusion", VotingClassifier | VotingRegressor)])`` whose voting
step holds the *already fitted* member pipelines (raw feature frame in, each with its own
ColumnTransformer). Nothing is refit: fuse() sets the attributes scikit-learn's own ``fit``
would set (``estimators_``, ``named_estimators_``, ``le_``, ``classes_``, ``feature_names_in_``;
``estimators`` holds unfitted clones, as after a real fit) and the weights. Classification
averages ``predict_proba`` with the weights (every member must have ``predict_proba`` and the
very same ``classes_``); regression takes the weighted mean of the predictions.

Why this shape:

- skl2onnx converts VotingClassifier/VotingRegressor, and a member that is a Pipeline goes
  through skl2onnx's nested-pipeline converter (``SklearnPipeline``), which parses each member's
  ColumnTransformer on the raw per-column inputs the voting step receives. So the stock
  converters give one graph with exactly a single pipeline's inputs and outputs; no custom
  converter or parser is registered. tuning.export.to_onnx works unchanged: it keys the
  ``zipmap=False`` option by the type of ``pipeline[-1]`` (VotingClassifier, which accepts it).
- The outer one-step Pipeline keeps the contract every consumer relies on: tuning.persist loads
  only Pipelines, and export/fitting/challenge read ``pipeline[-1].classes_``. The warm start
  sees a VotingClassifier without ``partial_fit`` and skips it.
- Two attributes the stock converter needs: ``weights`` must be a numpy array (it calls
  ``weights.sum()``), and ``flatten_transform=False`` (the converter refuses True). The members'
  own (string) labels are computed nowhere in the graph: skl2onnx prunes them; the label is the
  argmax of the averaged probabilities on both sides.
- Parity: the averaged probabilities are float32 sums in ONNX; with every member within
  ~1e-6 the fusion is too (measured in tests/tuning/test_tuning_fusion.py).

Members without ``predict_proba`` are refused by fuse() (ValueError) and skipped by
fused_candidate(). Every loopserve classification family has it (sgd is built with
``loss="log_loss"``), so in practice nothing is skipped for that reason. A member that is itself
a fused pipeline is expanded into its members (weights multiplied), which is the same model.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from tuning.fitting import validation_score
from tuning.metrics import greater_is_better as _greater_is_better
from tuning.spec import ModelSpec

STEP = "fusion"
MAX_WEIGHT_RATIO = 2.0  # best member's weight / worst member's weight in fusion_weights

# Estimator type name -> loopserve family (tuning.pipeline), the default diversity key.
_FAMILIES = {
    "LogisticRegression": "logistic",
    "Ridge": "ridge",
    "SGDClassifier": "sgd",
    "SGDRegressor": "sgd",
    "MLPClassifier": "mlp",
    "MLPRegressor": "mlp",
    "RandomForestClassifier": "random_forest",
    "RandomForestRegressor": "random_forest",
    "GradientBoostingClassifier": "gradient_boosting",
    "GradientBoostingRegressor": "gradient_boosting",
}


def is_fused(pipeline: Any) -> bool:
    """Whether ``pipeline`` is a fused model built by fuse()."""
    return (
        isinstance(pipeline, Pipeline)
        and len(pipeline.steps) == 1
        and isinstance(pipeline[-1], VotingClassifier | VotingRegressor)
    )


def fused_members(fused: Pipeline) -> tuple[list[Pipeline], list[float]]:
    """The member pipelines of a fused model and their weights (summing to 1)."""
    if not is_fused(fused):
        raise ValueError("not a fused pipeline")
    voting = fused[-1]
    return list(voting.estimators_), [float(w) for w in voting.weights]


def _family(pipeline: Pipeline) -> str:
    name = type(pipeline[-1]).__name__
    return _FAMILIES.get(name, name)


def _classes(pipeline: Pipeline) -> list[str]:
    return [str(c) for c in pipeline[-1].classes_]


def _flatten(members: list[Any], weights: list[float]) -> tuple[list[Any], list[float]]:
    out_members: list[Any] = []
    out_weights: list[float] = []
    for member, weight in zip(members, weights, strict=True):
        if is_fused(member):
            inner, inner_w = fused_members(member)
            out_members += inner
            out_weights += [weight * w for w in inner_w]
        else:
            out_members.append(member)
            out_weights.append(weight)
    return out_members, out_weights


def _normalised_weights(weights: Sequence[float], n: int) -> np.ndarray:
    w = np.asarray([float(v) for v in weights], dtype=np.float64)
    if len(w) != n:
        raise ValueError(f"{len(w)} weights for {n} members")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(w)}")
    return w / w.sum()


def _check_members(spec: ModelSpec, members: list[Any]) -> None:
    for i, member in enumerate(members):
        if not isinstance(member, Pipeline):
            raise ValueError(f"member {i} is a {type(member).__name__}, not a Pipeline")
        check_is_fitted(member)
        names = getattr(member, "feature_names_in_", None)
        if names is not None and list(names) != spec.feature_names:
            raise ValueError(
                f"member {i} takes columns {list(names)}, the spec has {spec.feature_names}"
            )
    if spec.task == "regression":
        for i, member in enumerate(members):
            if hasattr(member[-1], "classes_"):
                raise ValueError(f"member {i} is a classifier; the spec is a regression")
        return
    reference = None
    for i, member in enumerate(members):
        if not hasattr(member[-1], "classes_"):
            raise ValueError(f"member {i} is not a classifier; the spec is a classification")
        if not hasattr(member, "predict_proba"):
            raise ValueError(
                f"member {i} ({type(member[-1]).__name__}) has no predict_proba: "
                "soft voting needs probabilities"
            )
        classes = list(member[-1].classes_)
        if not all(isinstance(c, str) for c in classes):
            raise ValueError(f"member {i}: classes must be strings, got {classes}")
        if reference is None:
            reference = classes
        elif classes != reference:
            raise ValueError(
                f"member {i} has classes {classes}, member 0 has {reference}: "
                "fused members must share the same classes"
            )


def fuse(spec: ModelSpec, members: list[Pipeline], weights: Sequence[float]) -> Pipeline:
    """A soft-voting fusion of fitted pipelines (nothing is refit); weights are normalised.

    Raises ValueError when the members do not fit together (see the module docstring).
    """
    if not members:
        raise ValueError("fuse needs at least one member")
    if len(weights) != len(members):
        raise ValueError(f"{len(weights)} weights for {len(members)} members")
    members, flat_weights = _flatten(list(members), list(weights))
    w = _normalised_weights(flat_weights, len(members))
    _check_members(spec, members)
    names = [f"m{i}" for i in range(len(members))]
    templates = [(name, clone(member)) for name, member in zip(names, members, strict=True)]
    voting: VotingClassifier | VotingRegressor
    if spec.task == "classification":
        voting = VotingClassifier(templates, voting="soft", weights=w, flatten_transform=False)
        voting.le_ = LabelEncoder().fit(np.asarray(members[0][-1].classes_, dtype=object))
        voting.classes_ = voting.le_.classes_
    else:
        voting = VotingRegressor(templates, weights=w)
    voting.estimators_ = list(members)
    voting.named_estimators_ = Bunch(**dict(zip(names, members, strict=True)))
    if hasattr(members[0], "feature_names_in_"):
        voting.feature_names_in_ = np.asarray(members[0].feature_names_in_, dtype=object)
    return Pipeline([(STEP, voting)])


def refit_fused(
    spec: ModelSpec, members_refit: list[Pipeline], weights: Sequence[float]
) -> Pipeline:
    """The fusion of members refit elsewhere (e.g. on the full window), with the same weights.

    Pass the weights of the validated fusion (fused_members(fused)[1]), in member order.
    """
    return fuse(spec, members_refit, weights)


def fusion_weights(
    scores: Sequence[float], greater_is_better: bool, *, max_ratio: float = MAX_WEIGHT_RATIO
) -> list[float]:
    """Weights (summing to 1) from validation scores: linear in the score, best/worst = max_ratio.

    w_i is proportional to 1 + (max_ratio - 1) * g_i, where g_i in [0, 1] places score i
    between the worst (0) and the best (1) score. Equal scores give equal weights. The rule is
    scale-free (the same weights for an rmse in any unit, or for accuracy) and deterministic;
    the ratio is bounded because score gaps on one small validation set are mostly noise, and
    near-equal weights are hard to beat for averaged forecasts.
    """
    s = np.asarray([float(v) for v in scores], dtype=np.float64)
    if len(s) == 0:
        raise ValueError("no scores")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite, got {list(s)}")
    if max_ratio < 1:
        raise ValueError(f"max_ratio must be >= 1, got {max_ratio}")
    q = s if greater_is_better else -s
    spread = float(q.max() - q.min())
    g = (q - q.min()) / spread if spread > 0 else np.zeros_like(q)
    raw = 1.0 + (max_ratio - 1.0) * g
    return [float(v) for v in raw / raw.sum()]


def _usable(spec: ModelSpec, fitted: list[tuple[Pipeline, float]], ranked: list[int]) -> list[int]:
    """The ranked indices of members that can be fused together.

    Members fuse() would refuse alone (no predict_proba, wrong task or columns) are dropped.
    Classifiers must share their classes: the class list most members have wins (ties: the
    one of the best-ranked member), e.g. a window that missed a class leaves its member out.
    """
    ok: list[int] = []
    for i in ranked:
        try:
            _check_members(spec, [fitted[i][0]])
        except ValueError:
            continue
        ok.append(i)
    if spec.task == "regression" or not ok:
        return ok
    classes = {i: tuple(_classes(fitted[i][0])) for i in ok}
    counts: dict[tuple[str, ...], int] = {}
    for i in ok:
        counts[classes[i]] = counts.get(classes[i], 0) + 1
    reference = max(counts, key=lambda c: counts[c])  # first maximum: the best-ranked one's
    return [i for i in ok if classes[i] == reference]


def _pick(candidates: list[int], keys: Sequence[Hashable], k: int) -> list[int]:
    """Up to k of the ranked candidates: new keys first, in rank order, then the rest."""
    chosen: list[int] = []
    seen: set[Hashable] = set()
    for i in candidates:
        if len(chosen) < k and keys[i] not in seen:
            chosen.append(i)
            seen.add(keys[i])
    for i in candidates:
        if len(chosen) < k and i not in chosen:
            chosen.append(i)
    return sorted(chosen, key=candidates.index)


def fused_candidate(
    spec: ModelSpec,
    fitted: list[tuple[Pipeline, float]],
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    max_members: int = 3,
    groups: Sequence[Hashable] | None = None,
) -> tuple[Pipeline, float, list[int]] | None:
    """Fuse the best fitted members and score the fusion on the validation rows.

    fitted: (pipeline fitted on rows before the validation rows, its validation score).
    Members with a non-finite score, without predict_proba, or with other classes than most
    members are skipped. Among the best 2 * max_members of the rest (ties by index),
    members of a diversity key not yet taken come first, in score order; the remaining places
    go to the best of the others. groups: a diversity key per member, e.g. (family, window);
    default: the family of its estimator. Weights: fusion_weights of the members' scores.

    Returns (fused, its validation score with spec.metric, indices into ``fitted``, best
    first), or None when fewer than 2 members are usable or the fusion cannot be scored.
    The caller decides whether the fusion beats its best member.
    """
    if max_members < 2:
        raise ValueError(f"max_members must be >= 2, got {max_members}")
    if groups is not None and len(groups) != len(fitted):
        raise ValueError(f"{len(groups)} groups for {len(fitted)} members")
    metric = str(spec.metric)
    sign = 1.0 if _greater_is_better(metric) else -1.0
    finite = [
        i
        for i, (_, score) in enumerate(fitted)
        if score is not None and math.isfinite(float(score))
    ]
    ranked = sorted(finite, key=lambda i: (-sign * float(fitted[i][1]), i))
    usable = _usable(spec, fitted, ranked)
    if len(usable) < 2:
        return None
    keys: list[Hashable] = (
        list(groups) if groups is not None else [_family(pipe) for pipe, _ in fitted]
    )
    chosen = _pick(usable[: 2 * max_members], keys, max_members)
    scores = [float(fitted[i][1]) for i in chosen]
    weights = fusion_weights(scores, sign > 0)
    fused = fuse(spec, [fitted[i][0] for i in chosen], weights)
    try:
        score = validation_score(metric, fused, X_val, y_val)
    except ValueError:
        return None
    return fused, score, chosen


__all__ = [
    "fuse",
    "fused_candidate",
    "fused_members",
    "fusion_weights",
    "is_fused",
    "refit_fused",
]
