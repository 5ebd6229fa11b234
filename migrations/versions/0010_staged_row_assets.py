"""Which asset each staged row became: a narrow table instead of two columns on the row.

Enrichment used to link a staged row to its asset with `UPDATE raw_import_records SET
asset_id = …, is_processed = true`. A staged row is wide (raw cells, normalised data,
findings: ~1.4 KB at 15 columns) and the update rewrote all of it, with its index entries:
at 100,000 CMDB rows that was ~140 MB of heap and ~320 MB of WAL for two small values.
`staged_row_assets` holds one narrow row per processed staged row instead (a row without an
asset, e.g. an app_discovery connection whose source is not an asset, has asset_id NULL):
a row is processed exactly when it has one. Tenant-scoped with row-level security, as every
tenant table (migration 0007); removed with its import's staged rows by retention.

Revision ID: 0010_staged_row_assets
Revises: 0009_approval_gate
Create Date: 2026-12-01 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0010_staged_row_assets"
down_revision: str | None = "0009_approval_gate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "staged_row_assets"
SERVICE_GROUP = "dataimport_service"
POLICY = "tenant_isolation"
TENANT_MATCH = (
    "client_account_id = NULLIF(current_setting('app.client_account_id', true), '')::uuid "
    "AND engagement_id = NULLIF(current_setting('app.engagement_id', true), '')::uuid"
)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("data_import_id", UUID(as_uuid=True), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("asset_id", UUID(as_uuid=True), nullable=True),
        sa.Column("client_account_id", UUID(as_uuid=True), nullable=False),
        sa.Column("engagement_id", UUID(as_uuid=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_import_id"],
            ["data_imports.id"],
            name="fk_staged_row_assets_data_import_id_data_imports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("data_import_id", "row_number", name="pk_staged_row_assets"),
    )
    op.execute(
        f"""
        INSERT INTO {TABLE} (data_import_id, row_number, asset_id, client_account_id,
          engagement_id)
        SELECT data_import_id, row_number, asset_id, client_account_id, engagement_id
        FROM raw_import_records WHERE is_processed OR asset_id IS NOT NULL
        """
    )
    op.drop_column("raw_import_records", "asset_id")
    op.drop_column("raw_import_records", "is_processed")
    _protect(TABLE)


def downgrade() -> None:
    op.add_column(
        "raw_import_records",
        sa.Column("is_processed", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("raw_import_records", sa.Column("asset_id", UUID(as_uuid=True)))
    op.execute(
        f"""
        UPDATE raw_import_records r SET is_processed = true, asset_id = l.asset_id
        FROM {TABLE} l
        WHERE l.data_import_id = r.data_import_id AND l.row_number = r.row_number
        """
    )
    op.drop_table(TABLE)


def _protect(table: str) -> None:
    """The tenant policy (FORCEd) and the service group's grants, as migration 0007 gives
    every tenant table."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {POLICY} ON {table} USING ({TENANT_MATCH}) WITH CHECK ({TENANT_MATCH})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE_GROUP}")
    if int(op.get_bind().exec_driver_sql("SHOW server_version_num").scalar_one()) >= 170000:
        op.execute(f"GRANT MAINTAIN ON {table} TO {SERVICE_GROUP}")
