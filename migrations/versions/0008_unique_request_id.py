"""One import per (tenant, request_id), and the config generation of each import.

`request_id` is the client's idempotency key: two uploads with one key must be one import,
also when they race. Duplicates already stored are resolved first: the oldest import of a
key keeps it, the others keep their rows and lose only the key (NULL), so nothing is deleted.

`config_generation` counts the decisions that re-ran a phase (every `retry`): chunk activities
carry the generation they were started under and refuse to write when the import has moved
on, so a chunk of an old config that arrives late can never commit after the new run.

Revision ID: 0008_unique_request_id
Revises: 0007_row_level_security
Create Date: 2026-12-01 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_unique_request_id"
down_revision: str | None = "0007_row_level_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_data_imports_tenant_request_id"

_KEEP_OLDEST = """
UPDATE data_imports d SET request_id = NULL
FROM (
  SELECT id, row_number() OVER (
    PARTITION BY client_account_id, engagement_id, request_id ORDER BY created_at, id
  ) AS nth
  FROM data_imports WHERE request_id IS NOT NULL
) ranked
WHERE d.id = ranked.id AND ranked.nth > 1
"""


def upgrade() -> None:
    op.execute(_KEEP_OLDEST)
    op.create_index(
        INDEX,
        "data_imports",
        ["client_account_id", "engagement_id", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    op.add_column(
        "data_imports",
        sa.Column("config_generation", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("data_imports", "config_generation")
    op.drop_index(INDEX, table_name="data_imports")
