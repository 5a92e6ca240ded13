"""From a stream's raw results to the report's numbers and its PASS/MISS targets.

The raw results (var/drift/<stream>.json) hold every row's truth and every learner's
prediction; everything here is recomputed from them, so a report can be re-rendered or a
definition changed without running anything again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.drift import metrics
from bench.drift.baselines import ORACLE  # a reference, never the best baseline

LOOP = "loopserve"
RECOVER_GOAL = 1500


def scores(raw: dict[str, Any], learner: str) -> np.ndarray:
    return metrics.scores(raw["stream"]["task"], raw["truth"], raw["learners"][learner]["pred"])


def first_change(raw: dict[str, Any]) -> int | None:
    changes = raw["stream"]["changes"]
    return changes[0]["start"] if changes else None


def windowed_promotions(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Fallback when the graphs could not be replayed: the served metric over the NEXT rows
    from a promotion's first served row against the NEXT rows before it."""
    task, s, span = raw["stream"]["task"], scores(raw, LOOP), 2000
    out = []
    for p in raw["learners"][LOOP].get("promotions", []):
        first = p.get("first_served_row")
        if first is None or first == 0:
            continue
        new = metrics.metric(task, s[first : first + span])
        old = metrics.metric(task, s[max(0, first - span) : first])
        out.append(
            {
                "version": p["version"],
                "previous_version": p.get("previous_version"),
                "from_row": first,
                "new": new,
                "old": old,
                "worse": not metrics.better_or_equal(task, new, old),
                "windowed": True,
            }
        )
    return out


def loop_extras(raw: dict[str, Any]) -> dict[str, Any]:
    """Promotions, detections, false alarms and promotions that made things worse."""
    loop = raw["learners"][LOOP]
    change = first_change(raw)
    detections = loop.get("detections", [])
    false_alarms = [d for d in detections if change is None or d["row"] < change]
    compared = loop.get("replay") or windowed_promotions(raw)
    return {
        "promotions": loop.get("promotions", []),
        "detections": detections,
        "false_alarms": false_alarms,
        "compared": compared,
        "worse_promotions": [c for c in compared if c["worse"]],
        "lag_max": loop.get("lag_max"),
        "setup_seconds": (loop.get("setup") or {}).get("seconds"),
        "event_counts": loop.get("event_counts", {}),
        "events_truncated": loop.get("events_truncated", False),
        "tracebacks": loop.get("tracebacks", 0),
        "replay_error": loop.get("replay_error"),
    }


def analyse(raw: dict[str, Any]) -> dict[str, Any]:
    """Per learner: metrics.summary plus its seconds; loopserve also gets loop_extras."""
    task, change = raw["stream"]["task"], first_change(raw)
    learners = {}
    for name, result in raw["learners"].items():
        learners[name] = {
            **metrics.summary(task, scores(raw, name), change),
            "seconds": result.get("seconds"),
        }
    out = {"stream": raw["stream"], "learners": learners, "loop_error": raw.get("loop_error")}
    if LOOP in raw["learners"]:
        out["loop"] = loop_extras(raw)
    return out


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def _fmt(task: str, v: float | None) -> str:
    if v is None or np.isnan(v):
        return "—"
    return f"{v:.2%}" if task == "classification" else f"{v:.3f}"


def targets(analyses: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The benchmark's goals, one row per stream and goal."""
    rows = []
    for a in analyses:
        stream, learners = a["stream"], a["learners"]
        name, task = stream["name"], stream["task"]
        loop = learners.get(LOOP)
        base = {k: v for k, v in learners.items() if k not in (LOOP, ORACLE)}
        if stream["changes"]:
            sign = 1 if metrics.higher_is_better(task) else -1
            best_name = max(base, key=lambda k: sign * base[k]["overall"])
            best = base[best_name]["overall"]
            ok = None if loop is None else metrics.better_or_equal(task, loop["overall"], best)
            value = "not run" if loop is None else _fmt(task, loop["overall"])
            rows.append(
                {
                    "stream": name,
                    "target": "overall ≥ best baseline's",
                    "value": f"{value} vs {_fmt(task, best)} ({best_name})",
                    "verdict": _verdict(ok),
                }
            )
        if stream["changes"] and stream["changes"][0]["kind"] == "abrupt":
            rec = None if loop is None else loop["recover"]
            ok = None if loop is None else rec is not None and rec <= RECOVER_GOAL
            value = "not run" if loop is None else "never" if rec is None else f"{rec:,} rows"
            if ORACLE in learners:
                bound = learners[ORACLE]["recover"]
                value += f" ({ORACLE}: {'never' if bound is None else f'{bound:,} rows'})"
            rows.append(
                {
                    "stream": name,
                    "target": f"recovery ≤ {RECOVER_GOAL:,} rows",
                    "value": value,
                    "verdict": _verdict(ok),
                }
            )
        if not stream["changes"]:
            extras = a.get("loop")
            n = None if extras is None else len(extras["detections"])
            rows.append(
                {
                    "stream": name,
                    "target": "no detected change",
                    "value": "not run" if n is None else f"{n} detection(s)",
                    "verdict": _verdict(None if n is None else n == 0),
                }
            )
            worse = None if extras is None else extras["worse_promotions"]
            value = (
                "not run"
                if worse is None
                else (f"{len(worse)} of {len(extras['compared'])} compared promotion(s) worse")
            )
            rows.append(
                {
                    "stream": name,
                    "target": "no promotion worse than the champion it replaced",
                    "value": value,
                    "verdict": _verdict(None if worse is None else not worse),
                }
            )
    return rows


def fmt(task: str, v: float | None) -> str:
    """A metric as the report prints it: accuracy in %, RMSE with 3 decimals."""
    return _fmt(task, v)
