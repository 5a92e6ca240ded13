"""SQLAlchemy 2.0 tables. The database, not code alone, keeps the invariants:
one champion per model and one open retrain job per model are partial unique indexes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres wants BIGINT for large logs.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def storable(text: str) -> bool:
    """Whether text can be stored, or looked for: PostgreSQL's text holds no NUL character
    and refuses a query that has one, so a name with one names nothing."""
    return "\x00" not in text


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Model(Base):
    """A served model and the spec its user declared (tuning.spec.ModelSpec as JSON)."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    classes: Mapped[list[str] | None] = mapped_column(JSON)
    # The newest detected change of the champion's error (tuning.drift.ConceptChange, with the
    # labelled-row id where the new regime starts), and the newest data-drift report.
    change: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data_drift: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Artifact(Base):
    """Content-addressed bytes (ONNX graphs, skops pipelines); every reader checks the hash."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Stage(StrEnum):
    """Where a version stands. One champion per model (a partial unique index); a promotion
    archives the champion it replaces, a rollback retires the one it replaces."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"  # registered, being judged
    REJECTED = "rejected"
    ARCHIVED = "archived"
    RETIRED = "retired"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Trigger(StrEnum):
    """What asked for a retrain."""

    ADMIN = "admin"
    LABELS = "labels"  # retrain.every_labels new labelled rows
    SCHEDULE = "schedule"  # retrain.schedule_seconds since the last job
    CHANGE = "change"  # the concept-change detector fired
    DATA_DRIFT = "data_drift"  # the per-feature data-drift check fired


class Decision(StrEnum):
    """A finished retrain's verdict on its challenger."""

    PROMOTED = "promoted"
    REJECTED = "rejected"


def _varchar(kind: type[StrEnum], length: int) -> Enum:
    """A StrEnum stored as its value in a plain VARCHAR (no database enum type, no CHECK), so
    the schema is what the migrations made and a new member needs no migration."""
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class ModelVersion(Base):
    """One trained, exported and parity-checked pipeline of a model."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
        Index(
            "uq_model_versions_one_champion",
            "model_id",
            unique=True,
            sqlite_where=text("stage = 'champion'"),
            postgresql_where=text("stage = 'champion'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[Stage] = mapped_column(_varchar(Stage, 16))
    kind: Mapped[str] = mapped_column(String(16))
    onnx_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    pipeline_sha256: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_window: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    classes: Mapped[list[str] | None] = mapped_column(JSON)
    parent_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PredictionBatch(Base):
    """The prediction log (registry.predlog): what consecutive requests to one model version
    served, their inputs and outputs, as one row.

    A prediction id is the batch id (24 random hex digits) followed by the row's position (8
    hex digits), so a replica writes one row per model version per flush, however many requests
    it served, and a prediction is found from its id alone. Numeric features are kept as the
    graph saw them: one float32 matrix [rows, numeric features in spec order], NaN for
    missing; probabilities likewise [rows, classes of the version]. The rows' positions start
    at `first_position`, 0 in every batch the log writes; ids issued before revision 0003 were
    random, and each is kept as a one-row batch named by its first 24 digits whose first
    position is its last 8 (revision 0005).
    """

    __tablename__ = "prediction_batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    first_position: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    numeric: Mapped[bytes] = mapped_column(LargeBinary)
    categorical: Mapped[dict[str, list[str | None]] | None] = mapped_column(JSON)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    probabilities: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LabelledRow(Base):
    """A training row: uploaded data or feedback. The id orders rows by arrival.

    A prediction id is labelled at most once per model (NULLs, i.e. uploads, never clash).
    Feedback on a logged prediction also keeps what was served for it, so live performance is
    a query: the version, a classifier's answer, the row's error (0/1 for a classifier, the
    absolute error of a regressor), the probability it gave the true class, and when it was
    predicted (late labels count at that time).
    """

    __tablename__ = "labelled_rows"
    __table_args__ = (
        UniqueConstraint("model_id", "prediction_id", name="uq_labelled_rows_prediction"),
        Index("ix_labelled_rows_model_id_predicted_at", "model_id", "predicted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    prediction_id: Mapped[str | None] = mapped_column(String(32))
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[Any] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16))
    served_version: Mapped[int | None] = mapped_column(Integer)
    served: Mapped[str | None] = mapped_column(Text)  # a classifier's answer (a regressor's
    # metrics all follow from its error and the label)
    error: Mapped[float | None] = mapped_column(Float)
    true_proba: Mapped[float | None] = mapped_column(Float)
    predicted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


JOB_OPEN = (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(Base):
    """A retrain job. This table, not the broker, says what runs: a running job whose
    heartbeat stopped is re-queued by the platform."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "uq_jobs_one_open_per_model",
            "model_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    status: Mapped[JobStatus] = mapped_column(_varchar(JobStatus, 16), default=JobStatus.QUEUED)
    trigger: Mapped[Trigger] = mapped_column(_varchar(Trigger, 32))
    # {"reaction": true, "since_row_id": n}: a fast retrain on the rows after a detected change.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    last_row_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Event(Base):
    """The audit log: who did what to which model, when and why.

    An entry outlives its model: it keeps the model's name, and deleting the model clears the
    reference (revision 0006)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), index=True
    )
    model_name: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
