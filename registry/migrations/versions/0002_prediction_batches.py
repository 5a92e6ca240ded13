"""prediction log by batch: one row per request, a slim index row per prediction

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            ondelete="CASCADE",
            name=op.f("fk_prediction_batches_model_id_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_batches")),
    )
    with op.batch_alter_table("prediction_batches") as batch_op:
        batch_op.create_index(batch_op.f("ix_prediction_batches_model_id"), ["model_id"])
    _move_logged_rows()
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
    op.execute("UPDATE predictions SET batch_id = id, position = 0")
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.alter_column("batch_id", nullable=False)
        batch_op.alter_column("position", nullable=False)
        batch_op.drop_column("features")
        batch_op.drop_column("output")
        batch_op.create_foreign_key(
            batch_op.f("fk_predictions_batch_id_prediction_batches"),
            "prediction_batches",
            ["batch_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_predictions_batch_id"), ["batch_id"])


def _move_logged_rows() -> None:
    """Earlier per-row log entries become one-row batches in the column-oriented layout."""
    conn = op.get_bind()
    old = sa.table(
        "predictions",
        sa.column("id"),
        sa.column("model_id"),
        sa.column("version"),
        sa.column("features", sa.JSON()),
        sa.column("output", sa.JSON()),
        sa.column("created_at"),
    )
    new = sa.table(
        "prediction_batches",
        sa.column("id"),
        sa.column("model_id"),
        sa.column("version"),
        sa.column("rows"),
        sa.column("features", sa.JSON()),
        sa.column("output", sa.JSON()),
        sa.column("created_at"),
    )
    moved = []
    for row in conn.execute(sa.select(old)):
        probabilities = row.output.get("probabilities")
        moved.append(
            {
                "id": row.id,
                "model_id": row.model_id,
                "version": row.version,
                "rows": 1,
                "features": {k: [v] for k, v in row.features.items()},
                "output": {
                    "labels": [row.output.get("label")],
                    "probabilities": [list(probabilities.values())] if probabilities else None,
                    "classes": list(probabilities) if probabilities else None,
                },
                "created_at": row.created_at,
            }
        )
    if moved:
        conn.execute(sa.insert(new), moved)


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_predictions_batch_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_predictions_batch_id_prediction_batches"), type_="foreignkey"
        )
        batch_op.add_column(sa.Column("features", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True))
        batch_op.drop_column("position")
        batch_op.drop_column("batch_id")
    op.drop_table("prediction_batches")
