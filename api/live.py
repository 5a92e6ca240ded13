"""Live performance and drift of the served models, as the routes and /metrics report them.

Reads the shared database (registry.monitoring), computes with tuning.live once the session is
closed (on SQLite every transaction holds the write lock), and answers the routes' types
(api.records). Blocking: callers on the event loop run these in the thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.records import DriftStatus, Performance
from registry import catalog, monitoring
from registry.db import Database
from tuning import live
from tuning.metrics import greater_is_better

GAUGE_WINDOW = 500  # newest labelled predictions of a champion behind loopserve_live_metric
DRIFT_KINDS = {"change_detected": "concept", "data_drift_detected": "data"}
NOTHING = {"rows": 0, "value": None, "from": None, "to": None}  # no champion, no window


@dataclass(frozen=True)
class ModelHealth:
    """What /metrics exports for one model with a champion."""

    model: str
    metric: str
    value: float | None  # None: no labelled prediction of the champion yet
    drift: dict[str, bool]  # kind ("concept", "data") -> recorded for the champion version


class Monitor:
    def __init__(self, db: Database) -> None:
        self.db = db

    def performance(
        self, name: str, *, window: int, bucket_seconds: float, limit: int
    ) -> Performance:
        """The spec's metric over the newest `limit` labelled predictions: by windows of
        `window` rows (all versions, and each version), by `bucket_seconds` of prediction
        time, the champion's newest `window`, and the marks of version changes and detected
        changes at the position of the first prediction after them."""
        with self.db.session() as s:
            model = catalog.get_model(s, name)
            spec = catalog.spec_of(model)
            champion = catalog.champion(s, model.id)
            version = champion.version if champion else None
            rows = monitoring.outcomes(s, model.id, spec, limit=limit)
            own = (
                monitoring.outcomes(s, model.id, spec, limit=window, version=version)
                if version is not None
                else None
            )
            since = rows.at[0] if len(rows) else None
            marks = monitoring.timeline(s, model.id, since=since)
            change = model.change
        metric = str(spec.metric)  # the spec fills in its task's default
        now = live.current(metric, own, window=window) if own is not None else NOTHING
        at = [datetime.fromisoformat(m["at"]) for m in marks]
        for mark, position in zip(marks, live.positions_after(rows, at), strict=True):
            mark["row"] = position
        return Performance.model_validate(
            {
                "model": name,
                "metric": metric,
                "greater_is_better": greater_is_better(metric),
                "champion_version": version,
                "current": {"version": version, "window": window, **now},
                "by_rows": live.by_rows(metric, rows, window=window),
                "by_version": live.by_version(metric, rows, window=window),
                "by_time": live.by_time(metric, rows, bucket_seconds=bucket_seconds),
                "events": marks,
                "change": change,
            }
        )

    def drift(self, name: str) -> DriftStatus:
        """The newest per-feature data-drift report and the concept detector's state."""
        with self.db.session() as s:
            model = catalog.get_model(s, name)
            spec = catalog.spec_of(model)
            champion = catalog.champion(s, model.id)
            return DriftStatus.model_validate(
                {
                    "model": name,
                    "champion_version": champion.version if champion else None,
                    "data_drift": model.data_drift or None,
                    "concept": {
                        "last_change": model.change or None,
                        "detector": "ADWIN",
                        "delta": spec.drift.delta,
                        "min_rows": spec.drift.min_rows,
                    },
                }
            )

    def health(self) -> list[ModelHealth]:
        """Per model with a champion: its metric over its newest GAUGE_WINDOW labelled
        predictions, and which kinds of change were recorded since it was (last) promoted."""
        found = []
        with self.db.session() as s:
            for model in catalog.list_models(s):
                champion = catalog.champion(s, model.id)
                if champion is None:
                    continue
                spec = catalog.spec_of(model)
                rows = monitoring.outcomes(
                    s, model.id, spec, limit=GAUGE_WINDOW, version=champion.version
                )
                kinds = monitoring.detected_kinds(
                    s, model.id, champion.version, since=champion.promoted_at
                )
                found.append((model.name, str(spec.metric), rows, kinds))
        return [
            ModelHealth(
                name,
                metric,
                live.current(metric, rows, window=GAUGE_WINDOW)["value"],
                {kind: event in kinds for event, kind in DRIFT_KINDS.items()},
            )
            for name, metric, rows, kinds in found
        ]
