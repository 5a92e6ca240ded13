"""Watching each champion's live traffic, and the retrains that what it sees triggers.

Run every `LOOPSERVE_MONITOR_SECONDS` by beat (a Celery task, like the tick). Per model:

1. concept change: the errors of what was served since the last detected change (whichever
   version served them: a promotion lowers the error, which ADWIN passes over, while a
   change of the world raises it even right after a promotion) are replayed through ADWIN
   (tuning.drift); a rise is recorded on the model and in the audit log with its evidence;
2. data drift: at most every DATA_DRIFT_SECONDS, the newest logged inputs against the
   champion's training rows, per feature; a feature crossing the threshold is an audit event
   and, with `retrain.on_drift`, a retrain;
3. reaction: once `retrain.reaction_rows` labelled rows followed a detected change, a fast
   retrain on them (the spec's reaction budget) replaces any open job still working on the
   old regime; while the regime is young (registry.monitoring.YOUNG_REGIME_ROWS) another
   follows every `reaction_rows` labels, and then the label-count trigger's fuller search.

Triggers from detection wait `retrain.drift_cooldown_seconds` after the previous one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from registry import catalog, jobs, labelled, monitoring
from registry.db import Database
from registry.models import Model, Trigger, utcnow
from tuning.drift import data_drift, find_concept_change
from tuning.spec import ModelSpec
from worker.triggers import each_model

log = logging.getLogger(__name__)

REPLAY_ROWS = 20_000  # newest errors of a champion replayed through the detector
DATA_DRIFT_SECONDS = 10.0
REFERENCE_ROWS = 5_000  # newest training rows of the champion compared against
DETECTION_TRIGGERS = (Trigger.CHANGE, Trigger.DATA_DRIFT)


@dataclass
class WatchResult:
    """Job ids to send, and what was detected (model name -> kinds)."""

    send: list[str] = field(default_factory=list)
    detected: dict[str, list[str]] = field(default_factory=dict)


def watch(db: Database) -> WatchResult:
    """One pass over every model with a champion."""
    out = WatchResult()
    each_model(db, lambda name: watch_model(db, name, out), "monitoring")
    return out


def watch_model(db: Database, name: str, out: WatchResult) -> None:
    with db.session() as s:
        model = catalog.get_model(s, name)
        spec = catalog.spec_of(model)
        champion = catalog.champion(s, model.id)
        if champion is None:
            return
        version, window = champion.version, dict(champion.data_window or {})
        after = (model.change or {}).get("detected_row_id", 0)
        ids, errors = monitoring.error_stream(s, model.id, after_row_id=after, limit=REPLAY_ROWS)
        report = model.data_drift or {}
    found = find_concept_change(errors, delta=spec.drift.delta, min_rows=spec.drift.min_rows)
    if found is not None:
        detail = {
            **found.evidence(),
            "version": version,
            "start_row_id": ids[found.start],
            "detected_row_id": ids[found.position],
            "rows_replayed": len(errors),
            "detected_at": utcnow().isoformat(),
        }
        if _record_concept_change(db, name, detail):
            out.detected.setdefault(name, []).append("change")
    if _due(report.get("computed_at")) and _check_data_drift(db, name, spec, version, window):
        out.detected.setdefault(name, []).append("data_drift")
    if spec.retrain.on_drift:
        job_id = _react(db, name, spec)
        if job_id is not None:
            out.send.append(job_id)


def _record_concept_change(db: Database, name: str, detail: dict[str, Any]) -> bool:
    """Keep the change unless another process recorded the same or a later one first."""
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        if (model.change or {}).get("detected_row_id", 0) >= detail["detected_row_id"]:
            return False  # replays start after the last change, whichever version served
        reason = (
            f"the served error rose from {detail['before']:.4g} to {detail['after']:.4g} "
            f"(ADWIN, delta {detail['delta']}) from labelled row {detail['start_row_id']}"
        )
        monitoring.record_change(s, model, "change_detected", reason=reason, detail=detail)
    return True


def _due(computed_at: str | None) -> bool:
    if computed_at is None:
        return True
    last = datetime.fromisoformat(computed_at)
    return utcnow() - last >= timedelta(seconds=DATA_DRIFT_SECONDS)


def _check_data_drift(
    db: Database, name: str, spec: ModelSpec, version: int, window: dict[str, Any]
) -> bool:
    """Compare and store the report; True when a feature newly crossed the threshold."""
    with db.session() as s:
        model = catalog.get_model(s, name)
        current = monitoring.recent_inputs(s, model.id, spec, rows=spec.drift.data_window)
        reference = monitoring.training_inputs(s, model.id, spec, window, rows=REFERENCE_ROWS)
    report = data_drift(spec, reference, current, threshold=spec.drift.psi_threshold)
    body = {
        **report.to_json(),
        "version": version,
        "reference": {
            "first_row_id": window.get("first_row_id"),
            "last_row_id": window.get("last_row_id"),
        },
        "computed_at": utcnow().isoformat(),
    }
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        before = model.data_drift or {}
        newly = sorted(set(report.drifted) - set(before.get("drifted", [])))
        if before.get("version") != version:
            newly = report.drifted
        enough = report.current_rows >= min(spec.drift.data_window, 500)
        alarm = bool(newly) and enough
        body["retrain_due"] = alarm and spec.retrain.on_drift
        model.data_drift = body
        if not alarm:
            return False
        top = ", ".join(f"{f.feature} (PSI {f.psi:.3g})" for f in report.features[:3])
        monitoring.record_change(
            s,
            model,
            "data_drift_detected",
            reason=f"inputs drifted from the champion's training rows: {top}",
            detail=body,
        )
    return True


def _react(db: Database, name: str, spec: ModelSpec) -> str | None:
    """Submit the retrain a detection calls for, if it is due; the job id to send.

    After a concept change: the first reaction once `reaction_rows` rows followed it (it
    supersedes an open job of another trigger), then, while the regime is young, another
    reaction retrain each time `reaction_rows` more labels arrived and no job is open — each
    trained on more rows of the new concept, each judged on rows its champion has not seen.
    """
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        change, drift = dict(model.change or {}), dict(model.data_drift or {})
        if change and not change.get("reaction_job"):
            start = change["start_row_id"]
            if monitoring.rows_since(s, model.id, start) < spec.retrain.reaction_rows:
                return None
            if _cooling_down(s, model, spec):
                return None
            job_id, created = _submit(s, model, Trigger.CHANGE, _reaction(start))
            model.change = {**change, "reaction_job": job_id, "reactions": 1}
            return job_id if created else None
        if change and monitoring.young_regime(s, model) and jobs.open_job(s, model.id) is None:
            last = jobs.last_finished(s, model.id)
            new = labelled.rows_after(s, model.id, last.last_row_id if last else None)
            if new < spec.retrain.reaction_rows:
                return None
            job_id, created = _submit(s, model, Trigger.CHANGE, _reaction(change["start_row_id"]))
            model.change = {**change, "reactions": change.get("reactions", 1) + 1}
            return job_id if created else None
        if drift.get("retrain_due") and not _cooling_down(s, model, spec):
            model.data_drift = {**drift, "retrain_due": False}
            if jobs.open_job(s, model.id) is not None:
                return None  # the open job already trains on the newest rows
            job_id, created = _submit(s, model, Trigger.DATA_DRIFT, None)
            return job_id if created else None
    return None


def _reaction(start_row_id: int) -> dict[str, Any]:
    return {"reaction": True, "since_row_id": start_row_id}


def _cooling_down(s: Session, model: Model, spec: ModelSpec) -> bool:
    last = jobs.last_created(s, model.id, triggers=DETECTION_TRIGGERS)
    cooldown = timedelta(seconds=spec.retrain.drift_cooldown_seconds)
    return last is not None and utcnow() - last.created_at < cooldown


def _submit(
    s: Session, model: Model, trigger: Trigger, options: dict[str, Any] | None
) -> tuple[str, bool]:
    """Create the job, superseding an open one of another trigger (it works on rows from
    before the detection); (its id, whether it is new)."""
    open_job = jobs.open_job(s, model.id)
    if open_job is not None and open_job.trigger != trigger:
        jobs.supersede(
            s, open_job, reason="a change was detected; a retrain on the rows after it replaces it"
        )
        s.flush()
    job, created = jobs.submit(s, model, trigger=trigger, actor="monitor", options=options)
    if created:
        jobs.mark_sent(s, [job.id])
    return job.id, created
