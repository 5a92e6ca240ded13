"""Fan-out of one retrain's candidate fits across workers, rung by rung, as Celery chords.

Each rung of the successive-halving search becomes a chord: one `loopserve.candidate` task per
fit (any worker), then `loopserve.rung` on whichever worker, which advances the search and
either launches the next rung or concludes. The search state travels in the messages as JSON;
every task re-loads the job's rows (up to the job's last row id) once per process, so every
worker fits on the same data with the same seed and the result equals a one-process search.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from celery import chord

from registry.db import Database
from tuning.challenge import finish_search, plan_search
from tuning.search import FitTask, SearchState, advance, evaluate, pending
from tuning.state import Trial
from tuning.steps import failed_trial
from worker.training import JobData, JobLost, load, searched, step

CANDIDATE_TASK = "loopserve.candidate"
RUNG_TASK = "loopserve.rung"


class JobDataCache:
    """The few jobs this worker process fits candidates for, keyed by (job id, attempt)."""

    def __init__(self, db: Database, size: int = 2) -> None:
        self._db, self._size = db, size
        self._items: OrderedDict[tuple[str, int], JobData] = OrderedDict()

    def get(self, job_id: str, attempt: int) -> JobData:
        key = (job_id, attempt)
        if key not in self._items:
            self._items[key] = load(self._db, job_id, attempt)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return self._items[key]


def start(app: Any, job: JobData) -> None:
    """Plan the search and launch its first rung."""
    state = plan_search(job.spec, job.data)
    step(job.job_id, job.attempt, "rung", "search fanned out: %d fits", len(pending(state)))
    launch(app, job.job_id, job.attempt, state)


def launch(app: Any, job_id: str, attempt: int, state: SearchState) -> None:
    body = state.to_json()
    fits = [
        app.signature(CANDIDATE_TASK, args=(job_id, attempt, body, asdict(t)))
        for t in pending(state)
    ]
    chord(fits)(app.signature(RUNG_TASK, args=(job_id, attempt, body)))


def fit(
    cache: JobDataCache, job_id: str, attempt: int, state: dict, task: dict, *, worker: str
) -> dict:
    """One candidate fit, recording which worker ran it; never raises, so the chord always
    reaches its callback."""
    try:
        job = cache.get(job_id, attempt)
        trial = evaluate(
            job.spec,
            job.data.X_train,
            job.data.y_train,
            SearchState.from_json(state),
            FitTask(**task),
        )
    except JobLost:
        return {"stale": True}
    except Exception as exc:
        trial = failed_trial(FitTask(**task), f"{type(exc).__name__}: {exc}")
    trial.worker = worker
    return trial.to_json()


def next_step(
    cache: JobDataCache, job_id: str, attempt: int, state: dict, trials: list[dict]
) -> tuple[SearchState | None, Any]:
    """Advance the search with a rung's trials: (next state, None) to launch another rung, or
    (None, TuneResult) when the search is done. Raises JobLost for an attempt that is over."""
    if any(t.get("stale") for t in trials):
        raise JobLost(f"attempt {attempt} of job {job_id} is over")
    job = cache.get(job_id, attempt)
    after = advance(job.spec, SearchState.from_json(state), [Trial.from_json(t) for t in trials])
    if not after.finished:
        step(
            job_id,
            attempt,
            "rung",
            "rung of %d fits done; %d next",
            len(trials),
            len(pending(after)),
        )
        return after, None
    result = finish_search(job.spec, job.data, after, job.champion)
    searched(job, result)
    return None, result
