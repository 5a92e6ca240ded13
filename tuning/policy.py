"""Promotion policy: a challenger replaces the champion only when it is a real winner.

"Real" means, on the same newest hold-out: enough rows, a gain of at least ``min_delta`` in the
spec's metric, and a one-sided paired test at ``significance`` (McNemar on the discordant
rows for accuracy, a paired bootstrap otherwise). A first version is held to the same rules
against a baseline that always predicts the training majority class / mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from tuning import metrics
from tuning.export import Prediction
from tuning.spec import ModelSpec

BOOTSTRAP_CHUNK = 256
BOOTSTRAP_CELLS = 2_000_000  # resamples x rows held in memory at once (~16 MB per matrix)


@dataclass(frozen=True)
class Decision:
    """Whether to promote, a sentence saying why, and the numbers behind it (JSON-ready)."""

    promote: bool
    reason: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of the improvement (positive = challenger better, metric units)."""

    delta: float
    lower: float
    p_value: float
    samples: int


def baseline_prediction(spec: ModelSpec, y_train: np.ndarray, n: int) -> Prediction:
    """What a model knowing only the training targets says for n rows.

    Classification: the majority class (ties -> first in sorted order), class frequencies as
    probabilities. Regression: the training mean.
    """
    if len(y_train) == 0:
        raise ValueError("a baseline needs at least one training target")
    if spec.task == "regression":
        return Prediction(np.full(n, float(np.mean(y_train))), None, None)
    classes, counts = np.unique(
        np.asarray([str(v) for v in y_train], dtype=object), return_counts=True
    )
    freq = counts / counts.sum()
    labels = np.full(n, classes[int(np.argmax(counts))], dtype=object)
    return Prediction(labels, np.tile(freq, (n, 1)), [str(c) for c in classes])


def mcnemar_p(a_correct: np.ndarray, b_correct: np.ndarray) -> float:
    """One-sided exact McNemar p-value that b is more often right than a.

    Only discordant rows count: under H0 each is b's win with probability 1/2, so
    p = P(Binomial(n01 + n10, 1/2) >= n01), with n01 the rows only b gets right.
    """
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    b_wins, a_wins = int(np.sum(~a & b)), int(np.sum(a & ~b))
    n = b_wins + a_wins
    if n == 0:
        return 1.0
    return float(binom.sf(b_wins - 1, n, 0.5))


def paired_bootstrap(
    metric: str,
    y_true: np.ndarray,
    a: Prediction,
    b: Prediction,
    *,
    samples: int,
    seed: int,
    alpha: float,
) -> BootstrapResult:
    """Paired bootstrap of b's improvement over a.

    Each resample draws hold-out rows with replacement (the same rows for both) and recomputes
    the metric; ``lower`` is the alpha quantile of the improvements (one-sided interval) and
    ``p_value`` the share of resamples where b is not better, (k + 1) / (samples + 1).
    """
    n = len(y_true)
    sign = 1.0 if metrics.greater_is_better(metric) else -1.0
    delta = sign * (metrics.score(metric, y_true, b) - metrics.score(metric, y_true, a))
    rng = np.random.default_rng(seed)
    diffs = []
    chunk = max(1, min(BOOTSTRAP_CHUNK, BOOTSTRAP_CELLS // max(n, 1)))
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        sa = metrics.weighted_scores(metric, y_true, a, weights)
        sb = metrics.weighted_scores(metric, y_true, b, weights)
        diffs.append(sign * (sb - sa))
    d = np.concatenate(diffs)
    lower = float(np.quantile(d, alpha))
    p_value = float((np.sum(d <= 0) + 1) / (samples + 1))
    return BootstrapResult(delta, lower, p_value, samples)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _test_name(spec: ModelSpec, metric: str) -> str:
    test = spec.promotion.test
    if test == "auto":
        return "mcnemar" if metric == "accuracy" else "bootstrap"
    if test == "mcnemar" and spec.task == "regression":
        return "bootstrap"  # McNemar needs right/wrong rows; regression has none.
    return test


def decide(
    spec: ModelSpec,
    y_holdout: np.ndarray,
    champion: Prediction | None,
    challenger: Prediction,
    *,
    baseline: Prediction | None = None,
) -> Decision:
    """Promote the challenger only if every rule of spec.promotion holds (see module doc)."""
    if champion is None and baseline is None:
        raise ValueError("decide needs a champion or, for a first version, a baseline")
    reference = champion if champion is not None else baseline
    assert reference is not None
    versus = "champion" if champion is not None else "baseline"
    settings, metric = spec.promotion, str(spec.metric)
    y = np.asarray(y_holdout)
    n = len(y)
    info: dict[str, Any] = {
        "metric": metric,
        "reference": versus,
        "holdout_rows": n,
        "min_holdout": settings.min_holdout,
        "min_delta": settings.min_delta,
        "significance": settings.significance,
    }
    if n == 0:
        return Decision(False, "no hold-out rows to decide on", info)
    ref_score = metrics.score(metric, y, reference)
    new_score = metrics.score(metric, y, challenger)
    sign = 1.0 if metrics.greater_is_better(metric) else -1.0
    gain = sign * (new_score - ref_score)
    test = _test_name(spec, metric)
    info.update(
        champion=metrics.score(metric, y, champion) if champion is not None else None,
        baseline=metrics.score(metric, y, baseline) if baseline is not None else None,
        challenger=new_score,
        delta=new_score - ref_score,
        gain=gain,
        test=test,
    )
    if test == "mcnemar":
        a_ok, b_ok = y == reference.labels, y == challenger.labels
        p = mcnemar_p(a_ok, b_ok)
        info.update(
            p_value=p,
            challenger_only_right=int(np.sum(~a_ok & b_ok)),
            reference_only_right=int(np.sum(a_ok & ~b_ok)),
        )
        significant = p < settings.significance
        test_text = f"McNemar p={p:.3g} {'<' if significant else '>='} {settings.significance:g}"
    else:
        boot = paired_bootstrap(
            metric,
            y,
            reference,
            challenger,
            samples=settings.bootstrap_samples,
            seed=spec.retrain.seed,
            alpha=settings.significance,
        )
        info.update(p_value=boot.p_value, ci_lower=boot.lower, bootstrap_samples=boot.samples)
        significant = boot.lower > 0
        level = 100 * (1 - settings.significance)
        test_text = (
            f"paired bootstrap {level:g}% lower bound of the gain {_fmt(boot.lower)} "
            f"{'>' if significant else '<='} 0 (p={boot.p_value:.3g})"
        )
    big_enough = gain > 0 and gain >= settings.min_delta - 1e-12
    if gain > 0:
        relation = "≥" if big_enough else "<"
        change = f"gain +{_fmt(gain)} {relation} min_delta {_fmt(settings.min_delta)}"
    else:
        change = "no gain" if gain == 0 else f"worse by {_fmt(-gain)}"
    comparison = f"{metric} {_fmt(new_score)} vs {versus} {_fmt(ref_score)} ({change})"
    rows_text = f"on {n} hold-out rows"
    if n < settings.min_holdout:
        reason = f"not promoted: only {n} hold-out rows < min_holdout {settings.min_holdout}; "
        return Decision(False, reason + comparison, info)
    if not big_enough:
        return Decision(False, f"not promoted: {comparison} {rows_text}", info)
    if not significant:
        return Decision(False, f"not promoted: {comparison}, but {test_text} {rows_text}", info)
    return Decision(True, f"promoted: {comparison}, {test_text} {rows_text}", info)
