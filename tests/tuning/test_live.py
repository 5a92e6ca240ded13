"""tuning.live: each metric against sklearn, and the windows by rows, version and time.

(Pure tuning code; it sits here because this change may only add files under tests/api.)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn import metrics as skm

from tuning import live

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CLASSES = ["a", "b", "c"]


Rows = live.LiveRows


def classified(n: int, *, seed: int, versions: list[int] | None = None) -> tuple[Rows, np.ndarray]:
    """n classified rows one second apart, and the full probability matrix [n, 3]."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(3), size=n)
    served = np.array([CLASSES[i] for i in proba.argmax(axis=1)], dtype=object)
    truth = np.array(rng.choice(CLASSES, size=n), dtype=object)
    true_proba = proba[np.arange(n), [CLASSES.index(t) for t in truth]]
    rows = Rows(
        [T0 + timedelta(seconds=i) for i in range(n)],
        np.array(versions or [1] * n, dtype=np.int64),
        truth,
        served,
        (truth != served).astype(np.float64),
        true_proba,
    )
    return rows, proba


def regressed(n: int, *, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n) * 3
    served = truth + rng.normal(size=n)
    return Rows(
        [T0 + timedelta(seconds=i) for i in range(n)],
        np.ones(n, dtype=np.int64),
        truth,
        served,
        np.abs(truth - served),
        np.full(n, np.nan),
    )


def _all(rows: Rows) -> slice:
    return slice(None)


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("accuracy", lambda y, p, P: skm.accuracy_score(y, p)),
        ("balanced_accuracy", lambda y, p, P: skm.balanced_accuracy_score(y, p)),
        ("f1_macro", lambda y, p, P: skm.f1_score(y, p, average="macro")),
        ("log_loss", lambda y, p, P: skm.log_loss(y, P, labels=CLASSES)),
    ],
)
def test_classification_metrics_match_sklearn(metric, reference) -> None:  # type: ignore[no-untyped-def]
    rows, proba = classified(37, seed=3)
    got = live.metric_value(metric, rows, _all(rows))
    want = reference(list(rows.labels), list(rows.served), proba)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("rmse", lambda y, p: math.sqrt(skm.mean_squared_error(y, p))),
        ("mae", skm.mean_absolute_error),
        ("r2", skm.r2_score),
    ],
)
def test_regression_metrics_match_sklearn(metric, reference) -> None:  # type: ignore[no-untyped-def]
    rows = regressed(41, seed=5)
    got = live.metric_value(metric, rows, _all(rows))
    assert got == pytest.approx(reference(rows.labels, rows.served), rel=1e-9)


def test_log_loss_skips_rows_without_a_probability() -> None:
    rows, proba = classified(20, seed=7)
    rows.true_proba[[2, 5, 11]] = np.nan
    keep = np.setdiff1d(np.arange(20), [2, 5, 11])
    want = skm.log_loss(list(rows.labels[keep]), proba[keep], labels=CLASSES)
    assert live.metric_value("log_loss", rows, _all(rows)) == pytest.approx(want, rel=1e-9)
    rows.true_proba[:] = np.nan
    assert live.metric_value("log_loss", rows, _all(rows)) is None
    assert live.metric_value("accuracy", rows, np.arange(0)) is None


def test_windows_by_rows_end_on_the_newest_row_and_count_versions() -> None:
    rows, _ = classified(25, seed=1, versions=[1] * 12 + [2] * 13)
    windows = live.by_rows("accuracy", rows, window=10)
    assert [(w["end"], w["rows"]) for w in windows] == [(5, 5), (15, 10), (25, 10)]
    assert [w["versions"] for w in windows] == [{"1": 5}, {"1": 7, "2": 3}, {"2": 10}]
    assert windows[1]["from"] == rows.at[5].isoformat()
    assert windows[1]["to"] == rows.at[14].isoformat()
    assert windows[1]["value"] == pytest.approx(1 - rows.errors[5:15].mean())
    assert live.by_rows("accuracy", rows, window=5)[0]["rows"] == 5
    assert live.by_rows("accuracy", Rows([], *(np.array([]),) * 5), window=10) == []


def test_windows_by_version_use_only_that_versions_rows() -> None:
    versions = [1, 2] * 10 + [2] * 5
    rows, _ = classified(25, seed=2, versions=versions)
    series = live.by_version("accuracy", rows, window=4)
    own2 = np.flatnonzero(rows.versions == 2)  # 15 rows: windows of 3, 4, 4, 4
    assert [w["rows"] for w in series["2"]] == [3, 4, 4, 4]
    assert [w["end"] for w in series["2"]] == [int(own2[i]) + 1 for i in (2, 6, 10, 14)]
    assert series["2"][-1]["value"] == pytest.approx(1 - rows.errors[own2[-4:]].mean())
    assert [w["rows"] for w in series["1"]] == [2, 4, 4]
    assert all(w["versions"] == {"1": w["rows"]} for w in series["1"])


def test_windows_by_time_are_epoch_buckets_with_a_value_per_version() -> None:
    rows, _ = classified(30, seed=4, versions=[1] * 20 + [2] * 10)  # one row a second
    rows.at = [T0 + timedelta(seconds=7 + i) for i in range(30)]
    buckets = live.by_time("accuracy", rows, bucket_seconds=10)
    assert [(b["start"], b["rows"]) for b in buckets] == [
        ((T0 + timedelta(seconds=s)).isoformat(), n)
        for s, n in ((0, 3), (10, 10), (20, 10), (30, 7))
    ]
    assert buckets[0]["end"] == (T0 + timedelta(seconds=10)).isoformat()
    third = np.arange(13, 23)  # seconds 20..29
    assert buckets[2]["value"] == pytest.approx(1 - rows.errors[third].mean())
    assert buckets[2]["by_version"] == {
        "1": pytest.approx(1 - rows.errors[13:20].mean()),
        "2": pytest.approx(1 - rows.errors[20:23].mean()),
    }
    late = rows.at[:]  # a gap: empty buckets are left out
    late[-1] = T0 + timedelta(hours=1)
    rows.at = late
    assert live.by_time("accuracy", rows, bucket_seconds=10)[-1]["rows"] == 1
    with pytest.raises(ValueError):
        live.by_time("accuracy", rows, bucket_seconds=0)


def test_current_is_the_newest_window_and_marks_map_to_the_next_row() -> None:
    rows, _ = classified(30, seed=6)
    now = live.current("accuracy", rows, window=10)
    assert now["rows"] == 10 and now["to"] == rows.at[-1].isoformat()
    assert now["value"] == pytest.approx(1 - rows.errors[-10:].mean())
    assert live.current("accuracy", rows, window=100)["rows"] == 30
    empty = Rows([], *(np.array([]),) * 5)
    assert live.current("accuracy", empty, window=10) == {
        "rows": 0,
        "value": None,
        "from": None,
        "to": None,
    }
    moments = [T0 - timedelta(seconds=1), T0 + timedelta(seconds=4.5), T0 + timedelta(hours=1)]
    assert live.positions_after(rows, moments) == [0, 5, None]
    assert live.positions_after(rows, [T0]) == [
        1
    ]  # a row predicted at the very moment is before it
