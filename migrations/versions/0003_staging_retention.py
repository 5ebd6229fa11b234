"""Staging retention: mark imports whose staged rows were removed, find purgeable ones cheaply.

`staging_purge_started_at` is set when the retention job claims an import (reports answer
"removed after retention" from then on); `staging_purged_at` when its last staged row is gone.
The partial index holds only finished imports whose staging is still there, ordered by
finish time: the retention job reads it from the oldest end, and it stays as small as the
backlog, however many imports the table accumulates.

Revision ID: 0003_staging_retention
Revises: 0002
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_staging_retention"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The terminal statuses as of this revision (dataimport.contracts.TERMINAL_STATUSES), written
# out: a revision must not change meaning when the code moves on. The retention queries use
# the same literal list, so the planner can match this predicate.
PURGEABLE = (
    "staging_purged_at IS NULL AND status IN "
    "('cancelled', 'completed', 'completed_with_errors', 'failed')"
)


def upgrade() -> None:
    op.add_column(
        "data_imports",
        sa.Column("staging_purge_started_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "data_imports", sa.Column("staging_purged_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_data_imports_staging_purgeable",
        "data_imports",
        ["completed_at", "id"],
        unique=False,
        postgresql_where=sa.text(PURGEABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_data_imports_staging_purgeable", table_name="data_imports")
    op.drop_column("data_imports", "staging_purged_at")
    op.drop_column("data_imports", "staging_purge_started_at")
