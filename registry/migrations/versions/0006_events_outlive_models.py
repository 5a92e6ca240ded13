"""the audit log outlives its models: each entry keeps its model's name

Entries referenced their model by id alone, and went with it (ON DELETE CASCADE), so deleting a
model would have erased its history. From this revision an entry also keeps the model's name
(filled in here for every existing entry), and deleting a model clears the entry's reference
(ON DELETE SET NULL) instead: the log still says which model each entry was about.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FK = "fk_events_model_id_models"
_events = sa.table(
    "events", sa.column("model_id", sa.BigInteger()), sa.column("model_name", sa.String())
)
_models = sa.table("models", sa.column("id", sa.BigInteger()), sa.column("name", sa.String()))


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_name", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_model_name"), ["model_name"], unique=False)
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.create_foreign_key(_FK, "models", ["model_id"], ["id"], ondelete="SET NULL")
    name = sa.select(_models.c.name).where(_models.c.id == _events.c.model_id).scalar_subquery()
    op.execute(sa.update(_events).where(_events.c.model_id.is_not(None)).values(model_name=name))


def downgrade() -> None:
    """Entries of deleted models stay, without their name (revision 0005 shows them with no
    model); the others go with their model again."""
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.create_foreign_key(_FK, "models", ["model_id"], ["id"], ondelete="CASCADE")
        batch_op.drop_index(batch_op.f("ix_events_model_name"))
        batch_op.drop_column("model_name")
