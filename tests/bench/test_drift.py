"""The drift benchmark's own parts, without a server: streams, metrics, baselines, report."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from bench.drift import analysis, baselines, loop, metrics, report, streams


def _mixed_scores(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Concept A and B of abrupt_mixed recomputed from the rows: the stream's definition."""
    colour = {"red": 1.0, "green": 0.0, "blue": -1.0}
    grade = {g: (i - 2) * 0.75 for i, g in enumerate("abcde")}
    a = np.array([r["x0"] - r["x1"] + colour[r["colour"]] for r in rows]) > 0
    b = np.array([r["x2"] + r["x3"] + grade[r["grade"]] for r in rows]) > 0
    return a, b


def _yes(rows: list[dict], target: str) -> np.ndarray:
    return np.array([r[target] == "yes" for r in rows])


@pytest.mark.parametrize("name", list(streams.STREAMS))
def test_streams_are_deterministic_for_a_seed(name: str) -> None:
    one = streams.make(name, seed=3, initial=100, rows=1000)
    two = streams.make(name, seed=3, initial=100, rows=1000)
    other = streams.make(name, seed=4, initial=100, rows=1000)
    assert one == two
    assert one.rows != other.rows
    assert len(one.initial) == 100 and len(one.rows) == 1000
    for row in one.initial + one.rows:
        assert set(row) == {*one.features, one.target}
    spec = one.spec()
    assert set(spec) == {"name", "task", "target", "features"}


def test_change_points_scale_with_the_stream() -> None:
    assert streams.make("abrupt_mixed").changes == (streams.Change(10000, 10000, "abrupt"),)
    assert streams.make("gradual").changes == (streams.Change(9500, 10500, "gradual"),)
    assert streams.make("incremental").changes[0].start == 5000
    assert streams.make("regression_abrupt").changes[0].start == 10000
    assert streams.make("stationary").changes == ()
    assert streams.make("abrupt_mixed", rows=2000).first_change == 1000


def test_abrupt_mixed_changes_its_rule_at_the_change() -> None:
    s = streams.make("abrupt_mixed", initial=500, rows=4000)
    before, after = s.initial + s.rows[:2000], s.rows[2000:]
    a, b = _mixed_scores(before)
    assert np.mean(a == _yes(before, s.target)) > 0.9  # 5 % label noise
    assert abs(np.mean(b == _yes(before, s.target)) - 0.5) < 0.05
    a, b = _mixed_scores(after)
    assert np.mean(b == _yes(after, s.target)) > 0.9
    assert abs(np.mean(a == _yes(after, s.target)) - 0.5) < 0.05


def test_stationary_keeps_concept_a() -> None:
    s = streams.make("stationary", initial=500, rows=4000)
    a, _ = _mixed_scores(s.rows)
    assert np.mean(a == _yes(s.rows, s.target)) > 0.9


def test_gradual_moves_from_concept_a_to_b_around_the_middle() -> None:
    s = streams.make("gradual", initial=500, rows=20000)

    def agreement(rows: list[dict], concept: str) -> float:
        x = np.array([[r["x0"], r["x1"], r["x2"]] for r in rows])
        rule = x[:, 0] + x[:, 1] <= 10 if concept == "A" else x[:, 1] + x[:, 2] >= 10
        return float(np.mean(rule == np.array([r["label"] == "pos" for r in rows])))

    assert agreement(s.rows[8000:9400], "A") > 0.87  # 10 % label noise
    assert agreement(s.rows[10600:12000], "B") > 0.87
    middle = agreement(s.rows[9900:10100], "B")
    assert 0.4 < middle < 0.8  # a mixture of both concepts


def test_regression_abrupt_swaps_its_relevant_features() -> None:
    s = streams.make("regression_abrupt", initial=500, rows=4000)

    def residual(rows: list[dict], first: int) -> float:
        x = np.array([[r[f"x{first + j}"] for j in range(5)] for r in rows])
        f = (
            10 * np.sin(np.pi * x[:, 0] * x[:, 1])
            + 20 * (x[:, 2] - 0.5) ** 2
            + 10 * x[:, 3]
            + 5 * x[:, 4]
        )
        return float(np.sqrt(np.mean((np.array([r["y"] for r in rows]) - f) ** 2)))

    assert residual(s.rows[:2000], 0) < 1.1 < 3 < residual(s.rows[:2000], 5)
    assert residual(s.rows[2000:], 5) < 1.1 < 3 < residual(s.rows[2000:], 0)


def test_incremental_is_fixed_before_its_start_and_turns_after() -> None:
    from sklearn.linear_model import LogisticRegression

    s = streams.make("incremental", initial=2000, rows=8000)
    start = s.first_change
    assert start == 2000

    def xy(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([[r[f"x{j}"] for j in range(10)] for r in rows]), np.array(
            [r["label"] for r in rows]
        )

    model = LogisticRegression().fit(*xy(s.initial))
    assert model.score(*xy(s.rows[:start])) > 0.88
    assert model.score(*xy(s.rows[-1000:])) < 0.7  # a right angle later


def test_scores_and_overall() -> None:
    correct = metrics.scores("classification", ["a", "b", "a", "1"], ["a", "a", None, 1])
    assert correct.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert metrics.metric("classification", correct) == 0.5
    errors = metrics.scores("regression", [0.0, 0.0], [1.0, 2.0])
    assert metrics.metric("regression", errors) == pytest.approx(np.sqrt(2.5))
    assert np.isnan(metrics.metric("classification", np.array([])))


def test_worst_window() -> None:
    s = np.ones(1000)
    s[600:800] = 0
    assert metrics.worst_window("classification", s) == (300, pytest.approx(0.6))
    e = np.ones(1000)
    e[100:200] = 9.0  # squared errors
    first, rmse = metrics.worst_window("regression", e)
    assert first == 0 and rmse == pytest.approx(np.sqrt((400 + 900) / 500))


def test_rows_to_recover() -> None:
    s = np.concatenate([np.ones(2000), np.zeros(700), np.ones(3000)])
    # the first window from the change with at most 2 % wrong starts at 2,700: ends 1,200 on
    assert metrics.rows_to_recover("classification", s, 2000) == 1200
    s[2700:2710] = 0  # 10 wrong in the window from 2,700: still within 2 points
    assert metrics.rows_to_recover("classification", s, 2000) == 1200
    s[2710] = 0  # 11: not any more, the next window is
    assert metrics.rows_to_recover("classification", s, 2000) == 1300
    assert metrics.rows_to_recover("classification", np.ones(3000), 2000) == 500
    never = np.concatenate([np.ones(2000), np.zeros(3000)])
    assert metrics.rows_to_recover("classification", never, 2000) is None
    e = np.concatenate([np.ones(2000), np.full(300, 4.0), np.ones(2000)])  # RMSE 1, then 2
    # within 10 %: mean squared error <= 1.21, so at most 35 of the 500 rows at 4.0
    assert metrics.rows_to_recover("regression", e, 2000) == 800


def test_summary_after_change_and_last() -> None:
    s = np.concatenate([np.ones(6000), np.zeros(1000), np.ones(5000)])
    out = metrics.summary("classification", s, 6000)
    assert out["overall"] == pytest.approx(11000 / 12000)
    assert out["after_change"] == 0.5 and out["last"] == 1.0 and out["pre_change"] == 1.0
    assert out["recover"] == 1500 and out["worst"] == 0.0 and out["worst_at"] == 6000
    assert metrics.summary("classification", s, None)["recover"] is None


def test_baselines_run_on_a_600_row_stream() -> None:
    s = streams.make("abrupt_mixed", initial=200, rows=400)
    truth = [s.y(r) for r in s.rows]
    with threadpool_limits(1):  # as the benchmark runs them
        results = baselines.run_all(s, log=lambda _: None)
    assert list(results) == ["static", "periodic_refit", "river_arf", "river_hat", "oracle_refit"]
    assert baselines.ORACLE not in baselines.learners(streams.make("gradual", rows=400))
    for result in results.values():
        assert len(result["pred"]) == 400
        assert (
            metrics.metric(s.task, metrics.scores(s.task, truth[:200], result["pred"][:200])) > 0.6
        )
    r = streams.make("regression_abrupt", initial=200, rows=400)
    pred, _ = baselines.run(baselines.SklearnLearner(r, refit_every=200, window=300), r)
    assert len(pred) == 400 and all(isinstance(p, float) for p in pred)


def test_the_oracle_refits_on_the_rows_after_the_change_alone() -> None:
    s = streams.make("abrupt_mixed", initial=200, rows=2000)
    at = s.changes[0].start
    fits: list[list[dict]] = []
    oracle = baselines.OracleLearner(s, refit_every=500, change=at)
    real_fit = oracle._fit
    oracle._fit = lambda rows: (fits.append(list(rows)), real_fit(rows))  # type: ignore[method-assign]  # record, then fit
    with threadpool_limits(1):
        baselines.run(oracle, s)
    dense = (len(s.rows) - at) // 100
    before, after = fits[:-dense], fits[-dense:]
    assert len(before) == 1 + at // 500  # the initial fit, then periodic refits
    assert all(row not in s.rows[at:] for f in before for row in f)
    assert [len(f) for f in after] == list(range(100, len(s.rows) - at + 1, 100))
    assert all(f[0] is s.rows[at] for f in after)  # nothing from the old concept


def test_events_are_placed_on_the_stream() -> None:
    starts = [1000.0, 1001.0, 1002.0]
    at = "1970-01-01T00:16:41.500000+00:00"  # 1001.5 s
    assert loop.place(at, starts, 100, 300) == 100
    assert loop.place("1970-01-01T00:16:39", starts, 100, 300) == -1
    assert loop.place("1970-01-01T00:16:44+00:00", starts, 100, 300, ended=1003.0) == 300
    assert loop.is_detection("change_detected") and not loop.is_detection("promoted")


def test_promotions_and_detections_from_the_audit_log_and_served_versions() -> None:
    run = {
        "version": [1] * 200 + [2] * 200 + [3] * 100,
        "batches": [
            {"first": i * 100, "started": 1000.0 + i, "predict_s": 0.1, "feedback_s": 0.1}
            for i in range(5)
        ],
    }
    events = [  # newest first, as the route answers
        {
            "kind": "promoted",
            "version": 4,
            "at": "1970-01-01T00:16:46+00:00",
            "detail": {"previous_version": 3},
        },
        {
            "kind": "change_detected",
            "version": None,
            "at": "1970-01-01T00:16:41.5+00:00",
            "detail": {"detector": "adwin"},
        },
        {
            "kind": "promoted",
            "version": 2,
            "at": "1970-01-01T00:16:41.2+00:00",
            "detail": {"previous_version": 1},
        },
        {"kind": "promoted", "version": 1, "at": "1970-01-01T00:16:30+00:00", "detail": {}},
    ]
    out = loop.on_stream(events, run, 100)
    promoted = {p["version"]: p for p in out["promotions"]}
    assert set(promoted) == {2, 3, 4}  # v1 before the stream; v3 only in the served versions
    assert promoted[2]["row"] == 100 and promoted[2]["first_served_row"] == 200
    assert promoted[3]["previous_version"] == 2 and promoted[3]["first_served_row"] == 400
    assert promoted[4]["row"] == 500 and promoted[4]["first_served_row"] is None  # after the end
    assert [d["row"] for d in out["detections"]] == [100]
    assert out["event_counts"] == {"promoted": 2, "change_detected": 1}


def test_targets_and_report_from_a_hand_made_run() -> None:
    s = streams.make("abrupt_mixed", initial=200, rows=2000)
    truth = [s.y(r) for r in s.rows]
    wrong = {"yes": "no", "no": "yes"}
    raw = {
        "stream": {
            "name": s.name,
            "task": s.task,
            "target": s.target,
            "features": s.features,
            "description": s.description,
            "changes": [vars(c) for c in s.changes],
        },
        "truth": truth,
        "learners": {
            "loopserve": {
                "pred": truth,
                "seconds": 20.0,
                "detections": [{"row": 500}],
                "promotions": [
                    {"version": 2, "previous_version": 1, "row": 1100, "first_served_row": 1100}
                ],
                "replay": [],
            },
            "static": {"pred": [wrong[t] for t in truth], "seconds": 1.0},
            # a reference that is told the change: never the best baseline, even when perfect
            "oracle_refit": {"pred": truth, "seconds": 1.0},
        },
        "loop_error": None,
    }
    a = analysis.analyse(raw)
    assert a["learners"]["loopserve"]["overall"] == 1.0
    assert len(a["loop"]["false_alarms"]) == 1  # before the change at 1,000
    assert a["loop"]["compared"][0]["windowed"] and not a["loop"]["worse_promotions"]
    goals = analysis.targets([a])
    verdicts = {t["target"]: t["verdict"] for t in goals}
    assert set(verdicts.values()) == {"PASS"}
    assert "(static)" in goals[0]["value"] and "(oracle_refit: 500 rows)" in goals[1]["value"]
    meta = {
        "date": "d",
        "command": "c",
        "commit": "x",
        "machine": "m",
        "rows": 2000,
        "initial": 200,
        "batch": 100,
        "pace": 100.0,
        "seed": 0,
        "baselines_only": False,
        "stream_seconds": {"abrupt_mixed": 21.0},
    }
    text = report.render([a], meta)
    assert "| **loopserve** | 100.00% |" in text and "abrupt_mixed.png" in text


def test_the_detector_bench_finds_rises_and_no_false_alarm() -> None:
    from bench.drift.alarms import run

    text = run(seeds=2)
    stationary = [
        line for line in text.splitlines() if line.startswith("| 0/1") or "N(0,1)" in line
    ]
    assert len(stationary) == 4 and all("| 2 | 0 |" in line for line in stationary)
    assert "| 0.05 → 0.50 | 2/2 |" in text
