"""prediction log in binary columns

The log kept each request's features as a JSON document, and its writer could not keep up
with large batches. From this revision a batch keeps its numeric features as
one float32 matrix and its probabilities likewise, and a prediction id is its batch id and its
position in the batch, so no index row is written per prediction. Batches logged before keep
their JSON columns and the ids they issued keep their `predictions` rows, which readers still
understand.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BINARY = ("numeric", "probabilities")


def upgrade() -> None:
    with op.batch_alter_table("prediction_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("numeric", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("categorical", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("labels", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("probabilities", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("features", existing_type=sa.JSON(), nullable=True)
        batch_op.alter_column("output", existing_type=sa.JSON(), nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        # Float matrices do not compress: store them out of line without trying.
        for column in _BINARY:
            op.execute(f"ALTER TABLE prediction_batches ALTER COLUMN {column} SET STORAGE EXTERNAL")


def downgrade() -> None:
    # Batches logged in the binary form have neither JSON features nor index rows.
    op.execute("DELETE FROM prediction_batches WHERE features IS NULL")
    with op.batch_alter_table("prediction_batches", schema=None) as batch_op:
        batch_op.alter_column("output", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("features", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("probabilities")
        batch_op.drop_column("labels")
        batch_op.drop_column("categorical")
        batch_op.drop_column("numeric")
