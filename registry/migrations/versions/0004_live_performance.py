"""live performance and change detection

Feedback on a logged prediction keeps what was served for it (version, answer, error,
probability of the true class, prediction time), so a model's live metric is a query over its
labelled rows. A model keeps its newest detected change and data-drift report; a job may carry
options (a fast reaction retrain after a change).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("labelled_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("served_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("served", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("error", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("true_proba", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_labelled_rows_model_id_predicted_at", ["model_id", "predicted_at"]
        )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("data_drift", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("options")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("data_drift")
        batch_op.drop_column("change")
    with op.batch_alter_table("labelled_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_labelled_rows_model_id_predicted_at")
        batch_op.drop_column("predicted_at")
        batch_op.drop_column("true_proba")
        batch_op.drop_column("error")
        batch_op.drop_column("served")
        batch_op.drop_column("served_version")
