"""Plan, then apply: statuses `awaiting_approval` and `rejected`, and the approval plan.

An import started with `require_approval` stops after validation in `awaiting_approval` with
a plan of what enrichment would change (`data_imports.approval_plan`, JSONB: counts and capped
samples), until someone approves (enrichment runs) or rejects it (`rejected`, terminal). The
plan lives on the import's own row, so the row-level security policy of data_imports (0007)
already keeps it to its tenant.

`rejected` is a finished status: staging retention purges its staged rows like the others, so
the purgeable index (0003) and `purgeable_imports` (0007) are rebuilt with it. Their lists are
written out here as literals, as those revisions did (a revision keeps its meaning).

The downgrade maps the new statuses to the nearest old ones (`awaiting_approval` to
`needs_attention`, `rejected` to `failed`) before the old CHECK comes back.

Revision ID: 0009_approval_gate
Revises: 0008_unique_request_id
Create Date: 2026-12-01 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009_approval_gate"
down_revision: str | None = "0008_unique_request_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_data_imports_status"
INDEX = "ix_data_imports_staging_purgeable"
PURGEABLE_FUNCTION = "purgeable_imports(timestamptz, timestamptz, uuid, integer)"

OLD_STATUSES = (
    "pending",
    "ingesting",
    "validating",
    "enriching",
    "completed",
    "completed_with_errors",
    "needs_attention",
    "failed",
    "cancelled",
)
NEW_STATUSES = (*OLD_STATUSES[:7], "awaiting_approval", "failed", "cancelled", "rejected")
OLD_TERMINAL = "('cancelled', 'completed', 'completed_with_errors', 'failed')"
NEW_TERMINAL = "('cancelled', 'completed', 'completed_with_errors', 'failed', 'rejected')"


def _check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{status}'" for status in statuses) + ")"


def _purgeable_function(terminal: str) -> str:
    """As 0007 wrote it, with `terminal` as the finished statuses."""
    return f"""
        CREATE OR REPLACE FUNCTION purgeable_imports(
          cutoff timestamptz, after_completed_at timestamptz, after_id uuid, max_rows integer
        ) RETURNS TABLE (
          id uuid, client_account_id uuid, engagement_id uuid, completed_at timestamptz
        )
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$
          SELECT d.id, d.client_account_id, d.engagement_id, d.completed_at
          FROM public.data_imports d
          WHERE d.staging_purged_at IS NULL AND d.status IN {terminal}
            AND d.completed_at < cutoff
            AND (after_completed_at IS NULL OR after_id IS NULL
                 OR (d.completed_at, d.id) > (after_completed_at, after_id))
          ORDER BY d.completed_at, d.id
          LIMIT least(greatest(max_rows, 0), 500)
        $$
        """


def _purgeable(terminal: str) -> None:
    op.drop_index(INDEX, table_name="data_imports")
    op.create_index(
        INDEX,
        "data_imports",
        ["completed_at", "id"],
        unique=False,
        postgresql_where=sa.text(f"staging_purged_at IS NULL AND status IN {terminal}"),
    )
    # CREATE OR REPLACE keeps the owner, the REVOKE from PUBLIC and the service group's grant.
    op.execute(_purgeable_function(terminal))


def upgrade() -> None:
    op.drop_constraint(op.f(CHECK), "data_imports", type_="check")
    op.create_check_constraint(op.f(CHECK), "data_imports", _check(NEW_STATUSES))
    op.add_column("data_imports", sa.Column("approval_plan", JSONB(), nullable=True))
    _purgeable(NEW_TERMINAL)


def downgrade() -> None:
    op.execute(
        "UPDATE data_imports SET status = CASE status WHEN 'rejected' THEN 'failed' "
        "ELSE 'needs_attention' END WHERE status IN ('rejected', 'awaiting_approval')"
    )
    _purgeable(OLD_TERMINAL)
    op.drop_column("data_imports", "approval_plan")
    op.drop_constraint(op.f(CHECK), "data_imports", type_="check")
    op.create_check_constraint(op.f(CHECK), "data_imports", _check(OLD_STATUSES))
