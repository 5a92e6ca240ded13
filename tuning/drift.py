"""Change detection, as pure functions of what was served and what was labelled.

Two kinds, both cheap enough to run every second:

- concept change: river's ADWIN (Bifet & Gavaldà, SDM 2007) over the champion's per-row error
  (0/1 for classification, absolute error for regression), in the order the labels arrived.
  ADWIN keeps the longest recent window whose mean is consistent with itself and drops the
  older part when two sub-windows differ; only a *rise* of the error counts as a change (a
  fall is the model getting better, not the world getting worse). The detector's state is a
  function of the error stream since the last reference point (a promotion or a detected
  change), so it is replayed from the database instead of persisted: every process that
  replays the same rows finds the same change, and at ~0.3 µs per row a replay of 20 000
  rows costs ~6 ms.
- data drift: per feature, the newest logged inputs against the champion's training rows:
  the population stability index (PSI) on reference-quantile bins for numeric features and
  on categories for categorical ones, with the two-sample Kolmogorov-Smirnov test or the χ²
  test of homogeneity as a p-value beside it, so a person can judge the alarm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from river.drift import ADWIN
from scipy import stats

from tuning.spec import ModelSpec

PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty bin, so an unseen bin scores high, not infinite


@dataclass(frozen=True)
class ConceptChange:
    """A rise of the champion's error found by ADWIN.

    position: index (into the errors replayed) of the row at which the detector fired;
    start: index of the first row of the new regime (ADWIN's surviving window);
    before / after: mean error of the dropped older part and of the surviving window.
    """

    position: int
    start: int
    before: float
    after: float
    detector: str = "ADWIN"
    delta: float = 0.002

    def evidence(self) -> dict[str, Any]:
        return asdict(self)


def find_concept_change(
    errors: Sequence[float], *, delta: float, min_rows: int
) -> ConceptChange | None:
    """The first rise of the error in ``errors`` (oldest first) that ADWIN detects, or None."""
    if len(errors) < min_rows:
        return None
    adwin = ADWIN(delta=delta, grace_period=min_rows)
    values = np.asarray(errors, dtype=float)
    window_start = 0
    for i, value in enumerate(values):
        adwin.update(float(value))
        if not adwin.drift_detected:
            continue
        cut = i + 1 - int(adwin.width)
        before = float(values[window_start:cut].mean()) if cut > window_start else math.nan
        if before == before and float(adwin.estimation) > before:
            start = window_start + _split(values[window_start : i + 1])
            return ConceptChange(
                i,
                start,
                round(float(values[window_start:start].mean()), 6),
                round(float(values[start : i + 1].mean()), 6),
                delta=delta,
            )
        window_start = cut
    return None


def _split(values: np.ndarray, least: int = 10) -> int:
    """Where one change of mean most likely happened in ``values``: the split that explains the
    most variance (the maximum-likelihood change point of a Gaussian mean). ADWIN only says a
    change happened within its window, cut at bucket boundaries; this places it."""
    n = len(values)
    if n < 2 * least:
        return n // 2
    csum = np.cumsum(values)
    k = np.arange(least, n - least + 1)
    left = csum[k - 1] / k
    right = (csum[-1] - csum[k - 1]) / (n - k)
    gain = k * (n - k) / n * (left - right) ** 2
    return int(k[int(np.argmax(gain))])


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's shift: the test used, its statistic and p-value, and the verdict."""

    feature: str
    type: str
    psi: float
    test: str
    statistic: float
    p_value: float
    drifted: bool


@dataclass
class DataDrift:
    """Per-feature drift of current inputs against a reference, most drifted first."""

    reference_rows: int
    current_rows: int
    threshold: float
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "features": [asdict(f) for f in self.features],
        }


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two histograms given as counts over the same bins."""
    ref = np.maximum(reference / max(reference.sum(), 1), PSI_FLOOR)
    cur = np.maximum(current / max(current.sum(), 1), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _numeric(name: str, ref: np.ndarray, cur: np.ndarray, threshold: float) -> FeatureDrift:
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return FeatureDrift(name, "numeric", 0.0, "ks", 0.0, 1.0, False)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    value = psi(ref_counts.astype(float), cur_counts.astype(float))
    ks = stats.ks_2samp(ref, cur)
    return FeatureDrift(
        name, "numeric", round(value, 6), "ks", round(float(ks.statistic), 6),
        float(ks.pvalue), value > threshold,
    )  # fmt: skip


def _categorical(name: str, ref: np.ndarray, cur: np.ndarray, threshold: float) -> FeatureDrift:
    levels = sorted(set(ref) | set(cur))
    ref_counts = np.array([np.sum(ref == v) for v in levels], dtype=float)
    cur_counts = np.array([np.sum(cur == v) for v in levels], dtype=float)
    value = psi(ref_counts, cur_counts)
    if len(levels) < 2:
        statistic, p_value = 0.0, 1.0
    else:
        table = np.vstack([ref_counts, cur_counts]) + 0.5  # no empty cell
        chi2 = stats.chi2_contingency(table)
        statistic, p_value = float(chi2.statistic), float(chi2.pvalue)
    return FeatureDrift(
        name, "categorical", round(value, 6), "chi2", round(statistic, 6), p_value,
        value > threshold,
    )  # fmt: skip


def data_drift(
    spec: ModelSpec, reference: pd.DataFrame, current: pd.DataFrame, *, threshold: float
) -> DataDrift:
    """Compare feature frames (tuning.data shape) column by column; most drifted first."""
    report = DataDrift(len(reference), len(current), threshold)
    if len(reference) == 0 or len(current) == 0:
        return report
    for f in spec.features:
        ref, cur = reference[f.name].to_numpy(), current[f.name].to_numpy()
        if f.type == "numeric":
            found = _numeric(f.name, ref.astype(float), cur.astype(float), threshold)
        else:
            found = _categorical(f.name, ref.astype(object), cur.astype(object), threshold)
        report.features.append(found)
    report.features.sort(key=lambda d: (-d.psi, d.feature))
    return report
