"""Inventory indexes by import and by dependency group.

An import's totals and its incremental dependency-group update find the assets and
dependencies it created or last wrote; without these they read the whole tenant. Group
views read one group's members.

Revision ID: 0004_inventory_import_indexes
Revises: 0003_staging_retention
Create Date: 2026-12-01 10:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_inventory_import_indexes"
down_revision: str | None = "0003_staging_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_assets_source_import", "assets", ["source_import_id"]),
    ("ix_assets_created_by_import", "assets", ["created_by_import_id"]),
    (
        "ix_assets_tenant_dependency_group",
        "assets",
        ["client_account_id", "engagement_id", "dependency_group"],
    ),
    ("ix_asset_dependencies_source_import", "asset_dependencies", ["source_import_id"]),
    ("ix_asset_dependencies_created_by_import", "asset_dependencies", ["created_by_import_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
