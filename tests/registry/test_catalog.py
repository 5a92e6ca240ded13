"""Versions, the single-champion invariant, promotion and rollback, on SQLite and Postgres."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import catalog, events, jobs, labelled
from registry.catalog import NewVersion
from registry.errors import Conflict, CorruptArtifact, NotFound
from registry.models import (
    Artifact,
    Event,
    Job,
    LabelledRow,
    Model,
    ModelVersion,
    PredictionBatch,
    Trigger,
)
from registry.predlog.write import log_predictions
from tests.factories import churn_rows, churn_spec, features_only, logged_batch


def _version(
    session, model, n: int, onnx: bytes | None = None, pipeline: bytes | None = None
) -> ModelVersion:  # type: ignore[no-untyped-def]
    new = NewVersion(
        kind="refit",
        onnx=onnx or f"onnx-{n}".encode(),
        pipeline=pipeline,
        params={"n": n},
        metrics={},
        data_window={"last_row_id": n},
        classes=["no", "yes"],
        parent_version=None,
        reason="",
        job_id=None,
    )
    return catalog.register_version(session, model, new, stage="challenger")


def test_versions_number_up_and_store_artifacts_by_hash(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model = catalog.create_model(s, churn_spec(), actor="test")
        first, second = _version(s, model, 1), _version(s, model, 2)
        assert (first.version, second.version) == (1, 2)
        assert catalog.get_artifact(s, first.onnx_sha256) == b"onnx-1"


def test_a_corrupt_artifact_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        digest = catalog.put_artifact(s, "onnx", b"graph")
        s.execute(update(Artifact).where(Artifact.sha256 == digest).values(data=b"tampered"))
        with pytest.raises(CorruptArtifact, match=f"artifact {digest} is corrupt"):
            catalog.get_artifact(s, digest)


def test_database_refuses_a_second_champion(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model = catalog.create_model(s, churn_spec(), actor="test")
        a, b = _version(s, model, 1), _version(s, model, 2)
        model_id, a_id, b_id = model.id, a.id, b.id
        catalog.promote(s, model, a, actor="test", reason="first")
    with pytest.raises(IntegrityError), db.session() as s:
        # Bypass the code path entirely: the partial unique index must still refuse it.
        s.execute(update(ModelVersion).where(ModelVersion.id == b_id).values(stage="champion"))
    with db.session() as s:
        stages = dict(
            s.execute(
                select(ModelVersion.id, ModelVersion.stage).where(ModelVersion.model_id == model_id)
            ).all()
        )
        assert stages == {a_id: "champion", b_id: "challenger"}


def test_promote_and_rollback_walk_back_through_history(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model = catalog.create_model(s, churn_spec(), actor="test")
        versions = [_version(s, model, n) for n in (1, 2, 3)]
        for v in versions:
            catalog.promote(s, model, v, actor="alice", reason=f"promote {v.version}")
        assert catalog.champion(s, model.id).version == 3
        assert catalog.rollback(s, model, actor="bob", reason="bad").version == 2
        assert catalog.rollback(s, model, actor="bob", reason="worse").version == 1
        with pytest.raises(Conflict, match="no previous champion"):
            catalog.rollback(s, model, actor="bob", reason="again")
        stages = {v.version: v.stage for v in catalog.versions(s, model.id)}
        assert stages == {1: "champion", 2: "retired", 3: "retired"}
        log = events.list_events(s, "churn")
        kinds = [(e["kind"], e["version"], e["actor"]) for e in log[:3]]
        assert kinds == [
            ("rolled_back", 1, "bob"),
            ("rolled_back", 2, "bob"),
            ("promoted", 3, "alice"),
        ]


def test_promotion_and_its_event_roll_back_together(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        model = catalog.create_model(s, churn_spec(), actor="test")
        v = _version(s, model, 1)
    with pytest.raises(RuntimeError), db.session() as s:
        model = catalog.get_model(s, "churn", lock=True)
        catalog.promote(s, model, catalog.get_version(s, model, v.version), actor="a", reason="r")
        raise RuntimeError("crash after promote, before commit")
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        assert catalog.champion(s, model.id) is None
        assert [e["kind"] for e in events.list_events(s, "churn")] == ["model_created"]


def test_unknown_names_are_not_found(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        with pytest.raises(NotFound):
            catalog.get_model(s, "nope")
        model = catalog.create_model(s, churn_spec(), actor="test")
        with pytest.raises(NotFound):
            catalog.get_version(s, model, 7)
        with pytest.raises(Conflict):
            catalog.create_model(s, churn_spec(), actor="test")


def _populate(s: Session, name: str) -> int:
    """A model with two versions (the second its champion, with a graph and pipeline of its
    own; `onnx-1` is the first's graph, so two models populated alike share it by content
    hash), labelled rows, logged predictions, a finished job and an open one."""
    spec = churn_spec(name)
    model = catalog.create_model(s, spec, actor="test")
    _version(s, model, 1)
    second = _version(s, model, 2, onnx=f"{name}-graph".encode(), pipeline=name.encode())
    catalog.promote(s, model, second, actor="test", reason="seed")
    labelled.add_rows(s, model, spec, churn_rows(30, seed=1))
    rows = features_only(churn_rows(7, seed=2))
    log_predictions(s, [logged_batch(model.id, spec, rows), logged_batch(model.id, spec, rows[:3])])
    done, _ = jobs.submit(s, model, trigger=Trigger.ADMIN, actor="test")
    jobs.fail(s, done.id, attempt=None, error="test")
    s.flush()
    jobs.submit(s, model, trigger=Trigger.ADMIN, actor="test")
    return model.id


def _owned(s: Session, model_id: int) -> dict[str, Any]:
    """Everything stored for a model, and the artifacts of its versions."""
    table: Any
    out: dict[str, Any] = {}
    for table in (ModelVersion, LabelledRow, PredictionBatch, Job, Event):
        out[table.__tablename__] = sorted(
            s.scalars(select(table.id).where(table.model_id == model_id))
        )
    shas = s.execute(
        select(ModelVersion.onnx_sha256, ModelVersion.pipeline_sha256).where(
            ModelVersion.model_id == model_id
        )
    ).all()
    out["artifacts"] = sorted(
        s.scalars(select(Artifact.sha256).where(Artifact.sha256.in_({h for r in shas for h in r})))
    )
    out["model"] = s.get(Model, model_id) is not None
    return out


def test_deleting_a_model_takes_what_is_its_own_and_nothing_else(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        churn = _populate(s, "churn")
        other = _populate(s, "other")
        open_job = jobs.open_job(s, churn)
        assert open_job is not None
        before = _owned(s, other)
        assert all(before.values()) and len(before["artifacts"]) == 3
        churn_artifacts = _owned(s, churn)["artifacts"]
    with db.session() as s:
        gone = catalog.delete_model(s, "churn", actor="alice")
    assert gone == {
        "champion_version": 2,
        "versions": 2,
        "labelled_rows": 30,
        "predictions": 10,
        "jobs": 2,
        "cancelled_jobs": [open_job.id],
        "artifacts_deleted": 2,  # the second version's graph and pipeline
        "artifacts_kept": 1,  # the first version's graph, which `other` shares
    }
    with db.session() as s:
        assert _owned(s, other) == before
        for table in (ModelVersion, LabelledRow, PredictionBatch, Job):
            assert s.scalar(select(func.count()).where(table.model_id == churn)) == 0
        assert s.scalar(select(func.count()).select_from(Artifact)) == 3
        assert len(set(churn_artifacts) - set(before["artifacts"])) == 2
        with pytest.raises(NotFound):
            catalog.get_model(s, "churn")
        log = events.list_events(s, "churn")
        assert [(e["kind"], e["actor"]) for e in log[:2]] == [
            ("model_deleted", "alice"),
            ("retrain_superseded", "alice"),
        ]
        assert log[0]["detail"] == gone and log[0]["version"] == 2
        assert log[1]["detail"]["job_id"] == open_job.id
        assert log[-1]["kind"] == "model_created" and {e["model"] for e in log} == {"churn"}
        kept = s.scalars(select(Event.model_id).where(Event.model_name == "churn")).all()
        assert set(kept) == {None}
        assert catalog.model_names(s) == {"other"}
        with pytest.raises(NotFound, match="model 'churn' not found"):
            catalog.delete_model(s, "churn", actor="alice")


def test_a_deleted_models_name_can_be_taken_again(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        _populate(s, "churn")
    with db.session() as s:
        catalog.delete_model(s, "churn", actor="alice")
    with db.session() as s:
        model = catalog.create_model(s, churn_spec(), actor="bob")
        assert catalog.versions(s, model.id) == [] and labelled.rows_after(s, model.id, None) == 0
        kinds = [e["kind"] for e in events.list_events(s, "churn")]
        assert kinds[:2] == ["model_created", "model_deleted"]


def test_an_artifact_being_shared_is_not_deleted_under_the_sharer(db) -> None:  # type: ignore[no-untyped-def]
    """A worker registers a version whose graph is already stored for a model being deleted:
    the artifact stays and the registration commits, whichever transaction goes first."""
    with db.session() as s:
        _populate(s, "churn")
        catalog.create_model(s, churn_spec("other"), actor="test")
    stored, failed = threading.Event(), []

    def register() -> None:
        try:
            with db.session() as s:
                model = catalog.get_model(s, "other", lock=True)
                catalog.put_artifact(s, "onnx", b"onnx-1")  # stored already: churn's
                stored.set()
                time.sleep(0.5)  # the deletion runs meanwhile
                _version(s, model, 1)
        except Exception as exc:
            failed.append(exc)
            stored.set()

    worker = threading.Thread(target=register)
    worker.start()
    assert stored.wait(10)
    with db.session() as s:
        gone = catalog.delete_model(s, "churn", actor="alice")
    worker.join(10)
    assert failed == []
    assert gone["artifacts_kept"] == 1 and gone["artifacts_deleted"] == 2
    with db.session() as s:
        (version,) = catalog.versions(s, catalog.get_model(s, "other").id)
        assert catalog.get_artifact(s, version.onnx_sha256) == b"onnx-1"
