"""Versions, the single-champion invariant, promotion and rollback, on SQLite and Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from registry import catalog, events
from registry.catalog import NewVersion
from registry.errors import Conflict, CorruptArtifact, NotFound
from registry.models import Artifact, ModelVersion
from tests.factories import churn_spec


def _version(session, model, n: int) -> ModelVersion:  # type: ignore[no-untyped-def]
    new = NewVersion(
        kind="refit",
        onnx=f"onnx-{n}".encode(),
        pipeline=None,
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
