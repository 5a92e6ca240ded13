"""one prediction log format: batches logged as JSON become binary, their ids kept

Batches logged before revision 0003 kept their features and output as JSON, and the random ids
they issued were rows of `predictions`. Each such prediction becomes a one-row batch in the
binary form, named by the first 24 hex digits of its id, whose new `first_position` is the last
8: the id finds it as every later id finds its row, and readers know one format only.
Probabilities are kept when the version's classes are known, in their order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 16:30:00
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CHUNK = 500  # legacy batches converted per statement
_ISSUED = re.compile("[0-9a-f]{32}")  # uuid4().hex, later os.urandom(16).hex(): all issued ids

_batches = sa.table(
    "prediction_batches",
    sa.column("id", sa.String()),
    sa.column("model_id", sa.BigInteger()),
    sa.column("version", sa.Integer()),
    sa.column("rows", sa.Integer()),
    sa.column("first_position", sa.BigInteger()),
    sa.column("numeric", sa.LargeBinary()),
    sa.column("categorical", sa.JSON()),
    sa.column("labels", sa.JSON()),
    sa.column("probabilities", sa.LargeBinary()),
    sa.column("features", sa.JSON()),
    sa.column("output", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_predictions = sa.table(
    "predictions",
    sa.column("id", sa.String()),
    sa.column("model_id", sa.BigInteger()),
    sa.column("batch_id", sa.String()),
    sa.column("position", sa.Integer()),
    sa.column("version", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_models = sa.table("models", sa.column("id", sa.BigInteger()), sa.column("spec", sa.JSON()))
_versions = sa.table(
    "model_versions",
    sa.column("model_id", sa.BigInteger()),
    sa.column("version", sa.Integer()),
    sa.column("classes", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("prediction_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("first_position", sa.BigInteger(), server_default="0", nullable=False)
        )
    conn = op.get_bind()
    _rename_downgraded(conn)
    legacy = conn.scalars(sa.select(_batches.c.id).where(_batches.c.numeric.is_(None))).all()
    for start in range(0, len(legacy), _CHUNK):
        chunk = legacy[start : start + _CHUNK]
        converted = list(_converted(conn, chunk))
        if converted:
            conn.execute(sa.insert(_batches), converted)
        conn.execute(sa.delete(_batches).where(_batches.c.id.in_(chunk)))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_predictions_batch_id"))
        batch_op.drop_index(batch_op.f("ix_predictions_model_id"))
    op.drop_table("predictions")
    with op.batch_alter_table("prediction_batches", schema=None) as batch_op:
        batch_op.drop_column("output")
        batch_op.drop_column("features")
        batch_op.alter_column("numeric", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column("labels", existing_type=sa.JSON(), nullable=False)


def _rename_downgraded(conn: sa.Connection) -> None:
    """Batches already binary that an id of `predictions` names (as this revision's downgrade
    leaves them) take their name and first position from that id again."""
    named = conn.execute(
        sa.select(_predictions.c.id, _predictions.c.batch_id)
        .join(_batches, _batches.c.id == _predictions.c.batch_id)
        .where(_batches.c.numeric.is_not(None))
    ).all()
    for pid, batch_id in named:
        conn.execute(sa.delete(_predictions).where(_predictions.c.id == pid))
        name, first = _kept(pid)
        conn.execute(
            sa.update(_batches)
            .where(_batches.c.id == batch_id)
            .values(id=name, first_position=first)
        )


def _converted(conn: sa.Connection, batch_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
    """One binary one-row batch for each row of these JSON batches: under its issued id if it
    has one, else (no id names it, but recent-traffic drift reads it) under a new one."""
    ids: dict[tuple[str, int], str] = {
        (batch, position): pid
        for pid, batch, position in conn.execute(
            sa.select(_predictions.c.id, _predictions.c.batch_id, _predictions.c.position).where(
                _predictions.c.batch_id.in_(batch_ids)
            )
        )
    }
    specs: dict[int, Any] = {}  # the model row exists: its batches cascade with it
    classes: dict[tuple[int, int], list[str] | None] = {}
    rows = conn.execute(
        sa.select(
            _batches.c.id,
            _batches.c.model_id,
            _batches.c.version,
            _batches.c.rows,
            _batches.c.features,
            _batches.c.output,
            _batches.c.created_at,
        ).where(_batches.c.id.in_(batch_ids))
    ).all()
    for batch_id, model_id, version, n, features, output, created_at in rows:
        if model_id not in specs:
            specs[model_id] = conn.scalar(sa.select(_models.c.spec).where(_models.c.id == model_id))
        if (model_id, version) not in classes:
            classes[model_id, version] = conn.scalar(
                sa.select(_versions.c.classes).where(
                    _versions.c.model_id == model_id, _versions.c.version == version
                )
            )
        spec = specs[model_id]
        names = [f["name"] for f in spec["features"]]
        numeric = [f["name"] for f in spec["features"] if f["type"] == "numeric"]
        categorical = [f["name"] for f in spec["features"] if f["type"] == "categorical"]
        columns = {name: features.get(name) or [None] * n for name in names}
        output = output or {}
        labels = output.get("labels") or [None] * n
        for position in range(n):
            pid = ids.get((batch_id, position))
            new_id, first = _kept(pid) if pid else (os.urandom(12).hex(), 0)
            yield {
                "id": new_id,
                "model_id": model_id,
                "version": version,
                "rows": 1,
                "first_position": first,
                "numeric": _float32([columns[name][position] for name in numeric]),
                "categorical": {name: [columns[name][position]] for name in categorical} or None,
                "labels": [labels[position]],
                "probabilities": _probabilities(output, position, classes[model_id, version]),
                "created_at": created_at,
            }


def _kept(pid: str) -> tuple[str, int]:
    """The batch name and first position under which an issued id finds its row."""
    if _ISSUED.fullmatch(pid) is None:
        raise ValueError(f"prediction id {pid!r} is not 32 hex digits, as every issued id was")
    return pid[:24], int(pid[24:], 16)


def _float32(values: list[Any]) -> bytes:
    """Numbers as the graph took them (float32, NaN for missing)."""
    with np.errstate(over="ignore"):
        return np.array([np.nan if v is None else v for v in values], dtype="<f4").tobytes()


def _probabilities(
    output: dict[str, Any], position: int, classes: list[str] | None
) -> bytes | None:
    """A row's probabilities in the order of the version's classes, if both are known."""
    probabilities, logged_classes = output.get("probabilities"), output.get("classes")
    if not probabilities or not logged_classes or not classes:
        return None
    by_class = dict(zip(map(str, logged_classes), probabilities[position], strict=True))
    if set(by_class) != set(classes):
        return None
    return _float32([by_class[name] for name in classes])


def downgrade() -> None:
    """Ids kept by `first_position` get their `predictions` rows back, under which revision
    0004 finds them; later batches stay binary, as 0004 reads them too."""
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_predictions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["prediction_batches.id"],
            name=op.f("fk_predictions_batch_id_prediction_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_model_id"), ["model_id"])
        batch_op.create_index(batch_op.f("ix_predictions_batch_id"), ["batch_id"])
    with op.batch_alter_table("prediction_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("features", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True))
        batch_op.alter_column("numeric", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.alter_column("labels", existing_type=sa.JSON(), nullable=True)
    conn = op.get_bind()
    kept = conn.execute(
        sa.select(
            _batches.c.id,
            _batches.c.first_position,
            _batches.c.model_id,
            _batches.c.version,
            _batches.c.created_at,
        ).where(_batches.c.first_position != 0)
    ).all()
    for batch_id, first, model_id, version, created_at in kept:
        pid = f"{batch_id}{first:08x}"  # at 0004 no batch has its first 24 digits: looked up
        conn.execute(sa.update(_batches).where(_batches.c.id == batch_id).values(id=pid))
        conn.execute(
            sa.insert(_predictions).values(
                id=pid,
                model_id=model_id,
                batch_id=pid,
                position=0,
                version=version,
                created_at=created_at,
            )
        )
    with op.batch_alter_table("prediction_batches", schema=None) as batch_op:
        batch_op.drop_column("first_position")
