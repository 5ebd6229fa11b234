"""Inventory writes without per-row work they do not need.

Dependency groups move from `assets.dependency_group` ("G-" + the component's smallest asset
id, as text) to a table of their own keyed by that root as a uuid: labelling the
assets of a 100,000-row import rewrote 100,000 wide asset rows and every one of their ten
index entries (non-HOT updates: the column was indexed), 4.6 s of an 8.8 s group update. A
narrow (asset, group) table with two indexes takes the same labels in a fraction of that.

The foreign keys from dependency ends to assets go: each inserted edge ran two per-row key
checks that lock (and WAL-log) the asset rows, half of the link time at 1M rows (1.96 s of a
25,000-row range against 0.99 s without; 174 MB of WAL against 76 MB), and 17 of 28 s of
labelling 1M group members. Edges and members are only written from joins with the tenant's
assets, and nothing deletes assets.

Revision ID: 0005_dependency_group_members
Revises: 0004_inventory_import_indexes
Create Date: 2026-12-01 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_dependency_group_members"
down_revision: str | None = "0004_inventory_import_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "dependency_group_members"
TENANT = ["client_account_id", "engagement_id"]
OLD_INDEX = "ix_assets_tenant_dependency_group"
EDGE_KEYS = {
    "fk_asset_dependencies_source_asset_id_assets": "source_asset_id",
    "fk_asset_dependencies_target_asset_id_assets": "target_asset_id",
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("asset_id", sa.UUID(), nullable=False),
        sa.Column("group_root", sa.UUID(), nullable=False),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_dependency_group_members")),
    )
    # A group's members in id order: its size, and a sample of it, without reading assets.
    op.create_index("ix_dependency_group_members_group", TABLE, [*TENANT, "group_root", "asset_id"])
    # Labels were "G-" + the root's uuid; anything else was never written by an import.
    op.execute(
        f"INSERT INTO {TABLE} (asset_id, group_root, client_account_id, engagement_id) "
        "SELECT id, CAST(substr(dependency_group, 3) AS uuid), client_account_id, engagement_id "
        "FROM assets WHERE dependency_group ~ '^G-[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'"
    )
    op.drop_index(OLD_INDEX, table_name="assets")
    op.drop_column("assets", "dependency_group")
    for name in EDGE_KEYS:
        op.drop_constraint(name, "asset_dependencies", type_="foreignkey")


def downgrade() -> None:
    for name, column in EDGE_KEYS.items():
        op.create_foreign_key(
            name, "asset_dependencies", "assets", [column], ["id"], ondelete="CASCADE"
        )
    op.add_column("assets", sa.Column("dependency_group", sa.Text(), nullable=True))
    op.execute(
        f"UPDATE assets a SET dependency_group = 'G-' || g.group_root FROM {TABLE} g "
        "WHERE g.asset_id = a.id"
    )
    op.create_index(
        OLD_INDEX,
        "assets",
        [*TENANT, "dependency_group"],
        postgresql_where=sa.text("dependency_group IS NOT NULL"),
    )
    op.drop_index("ix_dependency_group_members_group", table_name=TABLE)
    op.drop_table(TABLE)
