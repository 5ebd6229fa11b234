"""The tenant policy reads the transaction's tenant once per statement, not once per row.

Migrations 0007 and 0010 wrote the policy as `client_account_id =
NULLIF(current_setting('app.client_account_id', true), '')::uuid AND …`: PostgreSQL treats
that as a filter it evaluates on every row a statement reads or writes (two setting lookups,
two text-to-uuid casts). Wrapped in scalar subqueries, each side becomes an InitPlan computed
once per statement and the filter compares two uuids. Measured on PostgreSQL 18 (2M rows, as
a role under the policy): a full scan took 1.2 s against 0.13 s, an INSERT … SELECT of 500k
rows 1.1 s against 0.5 s (through the workflow, a 1M-row CMDB import did not move beyond
its run-to-run spread: bench/README.md, twelfth session). The meaning does not change: an
unset or empty setting is still NULL and matches nothing, and an InitPlan parameter can still
be an index condition.

Revision ID: 0013_policy_once_per_statement
Revises: 0012_compact_field_sources
Create Date: 2026-12-04 18:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_policy_once_per_statement"
down_revision: str | None = "0012_compact_field_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
TENANT_TABLES = (
    "data_imports",
    "raw_import_records",
    "master_flows",
    "discovery_flows",
    "import_processing_steps",
    "assets",
    "asset_dependencies",
    "dependency_observations",
    "dependency_group_members",
    "staged_row_assets",
)
PER_ROW = (
    "client_account_id = NULLIF(current_setting('app.client_account_id', true), '')::uuid "
    "AND engagement_id = NULLIF(current_setting('app.engagement_id', true), '')::uuid"
)
ONCE = (
    "client_account_id = (SELECT NULLIF(current_setting('app.client_account_id', true), '')"
    "::uuid) AND engagement_id = (SELECT NULLIF(current_setting('app.engagement_id', true), "
    "'')::uuid)"
)


def upgrade() -> None:
    _alter(ONCE)


def downgrade() -> None:
    _alter(PER_ROW)


def _alter(match: str) -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER POLICY {POLICY} ON {table} USING ({match}) WITH CHECK ({match})")
