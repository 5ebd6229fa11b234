"""Inventory indexes by import and by dependency group; tenant lookup indexes made partial.

An import's totals and its incremental dependency-group update find the assets and
dependencies it created or last wrote; without these they read the whole tenant. Group
views read one group's members.

The secondary tenant indexes (IP, host name key, VM UUID, dependency group) become partial
(`WHERE <column> IS NOT NULL`): their lookups always name a value, and a full index over a
mostly-NULL column is tiny after deduplication, which made the planner, on a tenant it has no
statistics for yet, probe it for name-key lookups and scan the whole tenant per row.

Revision ID: 0004_inventory_import_indexes
Revises: 0003_staging_retention
Create Date: 2026-12-01 10:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_inventory_import_indexes"
down_revision: str | None = "0003_staging_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = ["client_account_id", "engagement_id"]

BY_IMPORT = (
    ("ix_assets_source_import", "assets", ["source_import_id"]),
    ("ix_assets_created_by_import", "assets", ["created_by_import_id"]),
    ("ix_asset_dependencies_source_import", "asset_dependencies", ["source_import_id"]),
    ("ix_asset_dependencies_created_by_import", "asset_dependencies", ["created_by_import_id"]),
)
# name -> column of the tenant lookup indexes made partial (the first three exist already).
PARTIAL = {
    "ix_assets_tenant_ip": "ip_address",
    "ix_assets_tenant_hostname": "hostname_key",
    "ix_assets_tenant_vm_uuid": "vm_uuid",
}
GROUP_INDEX = "ix_assets_tenant_dependency_group"


def _not_null(column: str) -> sa.TextClause:
    return sa.text(f"{column} IS NOT NULL")


def upgrade() -> None:
    for name, table, columns in BY_IMPORT:
        op.create_index(name, table, columns)
    for name, column in PARTIAL.items():
        op.drop_index(name, table_name="assets")
        op.create_index(name, "assets", [*TENANT, column], postgresql_where=_not_null(column))
    op.create_index(
        GROUP_INDEX,
        "assets",
        [*TENANT, "dependency_group"],
        postgresql_where=_not_null("dependency_group"),
    )


def downgrade() -> None:
    op.drop_index(GROUP_INDEX, table_name="assets")
    for name, column in PARTIAL.items():
        op.drop_index(name, table_name="assets")
        op.create_index(name, "assets", [*TENANT, column])
    for name, table, _columns in reversed(BY_IMPORT):
        op.drop_index(name, table_name=table)
