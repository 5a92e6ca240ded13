"""The request and response types of the platform's other JSON routes: the admin routes
(models and their deletion, data, retrains, jobs, promotion, rollback, the audit log), the model
listings, live performance and drift, and health. /openapi.json documents them from here
(api.openapi).

Answers are built by api.platform and api.live from the registry's rows and are exactly these
types: every key present (null where the value can be missing) and none other
(`extra="forbid"`, so a key the registry adds fails loudly instead of being dropped). The
documents the worker and the monitor store as JSON (a job's result, a detected change, a data
drift report) are passed on as stored: their types name every key their writers write, any of
which an older document may lack, and keep keys they do not name.

Timestamps stay the registry's ISO 8601 strings (`datetime.isoformat()`, UTC offset included),
documented as date-times.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

from api.schemas import EXAMPLE_MODEL, EXAMPLE_ROW
from registry.models import Decision, JobStatus, Stage, Trigger
from tuning.spec import ModelSpec

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
EXAMPLE_TARGET = "churned"
EXAMPLE_TIME = "2025-05-01T12:00:00.123456+00:00"
EXAMPLE_JOB = "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"


class Answer(BaseModel):
    """An answer of the platform: exactly these keys."""

    model_config = ConfigDict(extra="forbid")


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


# --- models and versions ----------------------------------------------------------------------


class VersionRecord(Answer):
    """One trained, exported and parity-checked version of a model."""

    version: int
    stage: Stage
    kind: str = Field(
        description="How it was trained: `refit`, `warm_start` (the champion continued on new "
        "rows), `fusion` (a soft vote of the search's best runs) or `imported` (trained "
        "elsewhere, its file imported)."
    )
    params: dict[str, Any] = Field(
        description="The configuration it was trained with; an imported version's lineage "
        "under `imported` (an ImportLineage)."
    )
    metrics: dict[str, Any] = Field(
        description="The numbers its promotion decision was taken on (scores of champion and "
        "challenger on the hold-out, the test's statistics) and its validation score."
    )
    data_window: dict[str, Any] = Field(
        description="The labelled rows it trained and was judged on, by row id "
        "(`first_row_id`, `last_row_id`, `rows`, `holdout`, ...); an imported version "
        "(`trained_elsewhere`) is taken to have seen the rows up to `last_row_id`."
    )
    parent_version: int | None = Field(description="The champion a warm start continued.")
    reason: str = Field(description="Why it was promoted or rejected.")
    onnx_sha256: str = Field(description="The served ONNX graph's content address.")
    classes: list[str] | None = Field(description="A classifier's classes, in output order.")
    job_id: str | None = Field(description="The retrain job that made it (none if imported).")
    created_at: Timestamp
    promoted_at: Timestamp | None = Field(description="When it last became the champion.")


class ModelRecord(Answer):
    """A model: its spec, its champion, and what this replica serves of it."""

    name: str
    spec: ModelSpec = Field(description="The spec it was created with.")
    classes: list[str] | None = Field(
        description="A classifier's known classes: the spec's, or those of its labelled data."
    )
    champion: VersionRecord | None = Field(description="The version that is to be served.")
    served_version: int | None = Field(
        description="The champion version this replica has loaded (null until it has); it "
        "follows `champion` within a poll."
    )
    labelled_rows: int = Field(description="Uploaded rows and labelled predictions.")
    created_at: Timestamp


# --- admin: data, retrains, jobs, promotion, rollback, audit log -----------------------------

RowValue = Annotated[
    float | str | bool | None,
    Field(description="A feature's value (null when missing) or the target's."),
]


class UploadRequest(BaseModel):
    """Labelled training rows as JSON (the route reads them with orjson, as it reads a CSV).
    The registry checks every row against the spec and names each offending row and field;
    nothing of a batch with a problem is stored."""

    rows: list[dict[str, RowValue]] = Field(
        min_length=1,
        description="Rows of `{feature: value, ..., target: label}` with every feature of "
        "the spec and its target.",
    )

    # No null in the example: FastAPI drops nulls from the examples of a route's openapi_extra.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rows": [
                        {**EXAMPLE_ROW, EXAMPLE_TARGET: "yes"},
                        {**EXAMPLE_ROW, "x1": -0.8, "color": "blue", EXAMPLE_TARGET: "no"},
                    ]
                }
            ]
        }
    )


EXAMPLE_CSV = "x1,x2,x3,x4,color,churned\n0.52,-1.3,0.07,2.0,red,yes\n1.1,0.4,,-0.3,blue,no\n"


class RowsAccepted(Answer):
    accepted: int = Field(description="Rows stored, committed before this answer.")

    model_config = _examples({"accepted": 2})


class RetrainQueued(Answer):
    """The model's retrain job: a new one, or the open one this request joined."""

    job_id: str = Field(description="Follow it at GET /v1/admin/jobs/{job_id}.")
    status: JobStatus
    joined: bool = Field(description="True when a job was open already and this joined it.")

    model_config = _examples({"job_id": EXAMPLE_JOB, "status": "queued", "joined": False})


@with_config(ConfigDict(extra="allow"))
class JobOptions(TypedDict, total=False):
    """How a job trains differently from a plain retrain."""

    reaction: Annotated[
        bool, Field(description="A fast retrain on the rows after a detected change.")
    ]
    since_row_id: Annotated[int, Field(description="The first row of the new regime.")]


@with_config(ConfigDict(extra="allow"))
class CandidateSummary(TypedDict, total=False):
    """The search's best candidate."""

    kind: Annotated[str, Field(description="`refit`, `warm_start` or `fusion`.")]
    config: dict[str, Any]
    window: Annotated[int | None, Field(description="Newest rows it trained on; null: all.")]
    validation_score: float | None


@with_config(ConfigDict(extra="allow"))
class ParityReport(TypedDict, total=False):
    """How closely the ONNX graph reproduces the trained pipeline."""

    ok: bool
    rows: int
    label_agreement: float
    max_abs_diff: float
    reason: str


@with_config(ConfigDict(extra="allow"))
class TrialRecord(TypedDict, total=False):
    """One step of the search (tuning.state.Trial): a fit, a probe, or why one was skipped."""

    kind: str
    stage: Annotated[
        str, Field(description="`rung N`, `final`, `validation`, `validate`, `skipped`, ...")
    ]
    config: dict[str, Any] | None
    window: int | None
    run: int | None
    rung: int | None
    rows: Annotated[list[int] | None, Field(description="[start, end) of the rows fitted.")]
    validation_score: float | None
    seconds: float | None
    error: str | None
    note: str | None
    members: list[dict[str, Any]] | None
    weights: list[float] | None
    best_single: float | None
    worker: str | None


@with_config(ConfigDict(extra="allow"))
class JobResult(TypedDict, total=False):
    """What a finished retrain decided, as its worker recorded it."""

    candidate_version: Annotated[
        int | None, Field(description="The version registered, null when none could be.")
    ]
    champion_version: Annotated[int | None, Field(description="The champion after the job.")]
    decision: Decision
    reason: str
    metrics: Annotated[
        dict[str, Any], Field(description="Scores of champion and challenger, the test's.")
    ]
    candidate: CandidateSummary
    parity: ParityReport
    trials: list[TrialRecord]


class JobRecord(Answer):
    """A retrain job: its state, and its result once finished."""

    job_id: str
    model: str = Field(description="The model it retrains.")
    status: JobStatus
    progress: float = Field(ge=0, le=1, description="Share of the search done.")
    trigger: Trigger
    options: JobOptions | None
    attempts: int = Field(description="Attempts started; a stalled one is re-queued.")
    result: JobResult | None = Field(description="Set when the job succeeded.")
    error: str | None = Field(description="Why the job failed.")
    created_at: Timestamp
    started_at: Timestamp | None = Field(description="When its current attempt started.")
    finished_at: Timestamp | None

    model_config = _examples(
        {
            "job_id": EXAMPLE_JOB,
            "model": EXAMPLE_MODEL,
            "status": "running",
            "progress": 0.4167,
            "trigger": "admin",
            "options": None,
            "attempts": 1,
            "result": None,
            "error": None,
            "created_at": EXAMPLE_TIME,
            "started_at": EXAMPLE_TIME,
            "finished_at": None,
        }
    )


MAX_JOBS_PAGE = 500


class JobPage(Answer):
    """A page of retrain jobs, newest first."""

    jobs: list[JobRecord] = Field(
        description="Newest first, each as GET /v1/admin/jobs/{job_id} answers it but for its "
        "result's `trials` (the search's steps, often dozens), which only that route answers."
    )
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next, older page; null on the last page."
    )

    model_config = _examples(
        {
            "jobs": [
                {
                    "job_id": EXAMPLE_JOB,
                    "model": EXAMPLE_MODEL,
                    "status": "failed",
                    "progress": 0.1667,
                    "trigger": "labels",
                    "options": None,
                    "attempts": 1,
                    "result": None,
                    "error": "not enough labelled rows: 40 (need 60)",
                    "created_at": EXAMPLE_TIME,
                    "started_at": EXAMPLE_TIME,
                    "finished_at": EXAMPLE_TIME,
                }
            ],
            "next_cursor": "1746100800123456." + EXAMPLE_JOB,
        }
    )


# Why an admin promoted or rolled back: text the audit log keeps, of a bounded length and
# without the NUL character PostgreSQL's text cannot hold.
AuditReason = Annotated[str | None, Field(max_length=1_000, pattern=r"^[^\x00]*$")]


def _whole(value: Any) -> Any:
    """A JSON number with no fraction (`2.0`) is the integer JSON Schema says it is; anything
    else is left to the strict check (no text, no boolean)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


class PromoteRequest(BaseModel):
    version: Annotated[int, BeforeValidator(_whole)] = Field(
        strict=True, ge=1, le=2**31 - 1, description="The version to make the champion."
    )
    reason: AuditReason = Field(
        default=None, description="For the audit log; default: `manual promotion`."
    )

    model_config = ConfigDict(
        coerce_numbers_to_str=True,
        json_schema_extra={"examples": [{"version": 2, "reason": "better on last week's data"}]},
    )


class Promoted(Answer):
    model: str
    champion_version: int
    previous_version: int | None = Field(description="The champion it replaced (archived).")

    model_config = _examples({"model": EXAMPLE_MODEL, "champion_version": 2, "previous_version": 1})


class RollbackRequest(BaseModel):
    """Optional: an empty body (or null) is a rollback with the default reason."""

    reason: AuditReason = Field(
        default=None, description="For the audit log; default: `manual rollback`."
    )

    model_config = ConfigDict(
        coerce_numbers_to_str=True,
        json_schema_extra={"examples": [{"reason": "v2 mislabels new customers"}]},
    )


class RolledBack(Answer):
    model: str
    champion_version: int = Field(description="The previous champion, serving again.")
    retired_version: int | None = Field(description="The champion it replaced (retired).")

    model_config = _examples({"model": EXAMPLE_MODEL, "champion_version": 1, "retired_version": 2})


ImportDecision = Literal["promoted", "rejected", "registered"]


class ImportLineage(Answer):
    """Where an imported version came from and what was made of it; kept in its `params`
    (under `imported`) and in its `version_imported` audit entry."""

    format: Literal["onnx", "skops"] = Field(
        description="An ONNX graph, or a scikit-learn Pipeline saved with skops."
    )
    filename: str | None = Field(description="The file's name, as the request gave it.")
    sha256: str = Field(description="The sha256 of the file as uploaded.")
    size: int = Field(description="The file's size in bytes.")
    actor: str = Field(description="Who imported it.")
    imported_at: Timestamp
    checks: list[str] = Field(description="What it was checked for, one sentence each.")
    parity: ParityReport | None = Field(
        description="A skops pipeline against its ONNX export; null for an ONNX file."
    )
    about: dict[str, Any] = Field(
        description="What the file says it is: a pipeline's steps and family, a graph's "
        "producer and opsets."
    )
    promote_requested: bool = Field(description="False when imported with `promote=false`.")
    decision: ImportDecision
    reason: str


class VersionImported(Answer):
    """The version an imported file became, and whether it now serves."""

    model: str
    version: VersionRecord
    decision: ImportDecision = Field(
        description="`promoted` (it won on the hold-out by the promotion rules), `rejected` "
        "(it did not) or `registered` (a challenger, for an explicit promotion: imported with "
        "`promote=false`, too few labelled rows to judge it, or the champion changed meanwhile)."
    )
    reason: str
    champion_version: int | None = Field(description="The champion after the import.")
    lineage: ImportLineage


class ModelDeleted(Answer):
    """What went with a deleted model (its `model_deleted` audit entry says the same)."""

    model: str
    champion_version: int | None = Field(description="The champion it had, if any.")
    versions: int = Field(description="Versions deleted.")
    labelled_rows: int = Field(description="Uploaded rows and labelled predictions deleted.")
    predictions: int = Field(description="Logged predictions deleted.")
    jobs: int = Field(description="Retrain jobs deleted, open or finished.")
    cancelled_jobs: list[str] = Field(
        description="The open jobs among them, superseded first: their workers drop their work."
    )
    artifacts_deleted: int = Field(description="ONNX graphs and pipelines no other model uses.")
    artifacts_kept: int = Field(
        description="Artifacts kept because another model's versions share them."
    )

    model_config = _examples(
        {
            "model": EXAMPLE_MODEL,
            "champion_version": 2,
            "versions": 3,
            "labelled_rows": 5200,
            "predictions": 48000,
            "jobs": 3,
            "cancelled_jobs": [EXAMPLE_JOB],
            "artifacts_deleted": 6,
            "artifacts_kept": 0,
        }
    )


class EventRecord(Answer):
    """An entry of the audit log: who did what to which model, when and why."""

    id: int
    model: str | None = Field(description="The model's name, kept after it is deleted.")
    kind: str = Field(
        description="`model_created`, `data_uploaded`, `retrain_requested`, "
        "`retrain_finished`, `version_imported`, `promoted`, `rolled_back`, `change_detected`, "
        "`model_deleted`, ..."
    )
    actor: str = Field(description="`admin`, `worker:<name>`, `monitor`, `platform`, ...")
    version: int | None = Field(description="The version concerned.")
    reason: str
    detail: dict[str, Any]
    at: Timestamp

    model_config = _examples(
        {
            "id": 42,
            "model": EXAMPLE_MODEL,
            "kind": "promoted",
            "actor": "admin",
            "version": 2,
            "reason": "manual promotion",
            "detail": {"previous_version": 1},
            "at": EXAMPLE_TIME,
        }
    )


# --- live performance and drift --------------------------------------------------------------

Versions = Annotated[
    dict[str, int], Field(description="Rows per version that served them (by version number).")
]


class CurrentWindow(Answer):
    """The metric over the champion's newest `window` labelled predictions."""

    version: int | None = Field(description="The champion; null when there is none.")
    window: int
    rows: int
    value: float | None = Field(description="Null without rows (or what the metric needs).")
    from_: Timestamp | None = Field(alias="from", description="Oldest prediction's time.")
    to: Timestamp | None = Field(description="Newest prediction's time.")


class RowWindow(Answer):
    """Consecutive labelled predictions, ordered by prediction time."""

    end: int = Field(description="Position just past its newest row, on the axis of all rows.")
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    rows: int
    value: float | None
    versions: Versions


class TimeBucket(Answer):
    """The labelled predictions made within one bucket of time."""

    start: Timestamp
    end: Timestamp
    rows: int
    value: float | None
    by_version: dict[str, float | None] = Field(description="The metric per version.")


MarkKind = Literal["promoted", "rolled_back", "change_detected", "data_drift_detected"]


class Mark(Answer):
    """A version change or a detected change, placed on the rows' axis."""

    at: Timestamp
    kind: MarkKind
    version: int | None
    reason: str
    row: int | None = Field(
        description="Position of the first prediction made after it; null when none was."
    )


@with_config(ConfigDict(extra="allow"))
class ConceptChange(TypedDict, total=False):
    """A rise of the champion's error found by ADWIN, as the monitor recorded it."""

    version: Annotated[int | None, Field(description="The champion it was found on.")]
    start_row_id: Annotated[int, Field(description="First labelled row of the new regime.")]
    detected_row_id: Annotated[int, Field(description="The labelled row it was found at.")]
    before: Annotated[float, Field(description="Mean error before the change.")]
    after: Annotated[float, Field(description="Mean error since.")]
    detector: str
    delta: float
    position: int
    start: int
    rows_replayed: int
    detected_at: Timestamp
    reaction_job: Annotated[str, Field(description="The fast retrain it triggered.")]
    reactions: Annotated[int, Field(description="Reaction retrains run on the new regime.")]


class Performance(Answer):
    """The spec's metric over labelled predictions: by windows of rows (all versions, and per
    version), by time, the champion's newest window, and version and detected changes."""

    model: str
    metric: str
    greater_is_better: bool
    champion_version: int | None
    current: CurrentWindow
    by_rows: list[RowWindow] = Field(description="Oldest first; the newest window is full.")
    by_version: dict[str, list[RowWindow]] = Field(
        description="Each version's windows of its own rows, by version number."
    )
    by_time: list[TimeBucket] = Field(description="Buckets holding rows, oldest first.")
    events: list[Mark] = Field(description="Oldest first.")
    change: ConceptChange | None = Field(description="The newest detected change.")


@with_config(ConfigDict(extra="allow"))
class FeatureDrift(TypedDict, total=False):
    """One feature's shift between the champion's training rows and the newest inputs."""

    feature: str
    type: Literal["numeric", "categorical"]
    psi: Annotated[float, Field(description="Population stability index.")]
    test: Annotated[str, Field(description="`ks` (numeric) or `chi2` (categorical).")]
    statistic: float
    p_value: float
    drifted: Annotated[bool, Field(description="Whether `psi` is over the threshold.")]


@with_config(ConfigDict(extra="allow"))
class DriftReference(TypedDict, total=False):
    """The champion's training rows the inputs were compared with, by row id."""

    first_row_id: int | None
    last_row_id: int | None


@with_config(ConfigDict(extra="allow"))
class DataDriftReport(TypedDict, total=False):
    """The newest per-feature comparison of inputs, as the monitor stored it."""

    reference_rows: int
    current_rows: int
    threshold: float
    drifted: Annotated[list[str], Field(description="Features over the threshold.")]
    features: Annotated[list[FeatureDrift], Field(description="Most drifted first.")]
    version: int
    reference: DriftReference
    computed_at: Timestamp
    retrain_due: bool


class ConceptState(Answer):
    """The concept-change detector: its settings and the change it found last."""

    last_change: ConceptChange | None
    detector: Literal["ADWIN"]
    delta: float
    min_rows: int


class DriftStatus(Answer):
    """The newest data-drift report and the concept detector's state."""

    model: str
    champion_version: int | None
    data_drift: DataDriftReport | None = Field(description="Null until one was computed.")
    concept: ConceptState


# --- health ----------------------------------------------------------------------------------


class Health(Answer):
    status: Literal["ok"]


class Readiness(Answer):
    """Whether this replica serves: the database answers and the champions were loaded."""

    status: Literal["ready", "not ready"]
    problems: list[str] = Field(description="What keeps it from being ready.")
    models: dict[str, int] = Field(description="Champion versions loaded, by model.")
    not_ready: dict[str, str] = Field(
        description="Models whose champion could not be loaded, and what is served instead; "
        "the other models are served."
    )

    model_config = _examples(
        {"status": "ready", "problems": [], "models": {EXAMPLE_MODEL: 3}, "not_ready": {}},
        {
            "status": "not ready",
            "problems": ["champions not loaded yet"],
            "models": {},
            "not_ready": {},
        },
    )
