"""Inventory for all categories: placement, sizing, data stores, move groups, observations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:38:58.261873
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dependency_observations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("dependency_id", sa.UUID(), nullable=False),
        sa.Column("observation_key", sa.Text(), nullable=False),
        sa.Column("conn_count", sa.BigInteger(), nullable=True),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data_import_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dependency_id"],
            ["asset_dependencies.id"],
            name=op.f("fk_dependency_observations_dependency_id_asset_dependencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dependency_observations")),
        sa.UniqueConstraint(
            "dependency_id", "observation_key", name="uq_dependency_observations_key"
        ),
    )
    op.add_column(
        "asset_dependencies",
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("assets", sa.Column("vm_uuid", sa.Text(), nullable=True))
    op.add_column("assets", sa.Column("power_state", sa.Text(), nullable=True))
    op.add_column("assets", sa.Column("host_name", sa.Text(), nullable=True))
    op.add_column("assets", sa.Column("cluster", sa.Text(), nullable=True))
    op.add_column("assets", sa.Column("datacenter", sa.Text(), nullable=True))
    op.add_column(
        "assets", sa.Column("rightsizing", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column(
        "assets", sa.Column("data_stores", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("assets", sa.Column("dependency_group", sa.Text(), nullable=True))
    op.create_index(
        "ix_assets_tenant_vm_uuid",
        "assets",
        ["client_account_id", "engagement_id", "vm_uuid"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_assets_tenant_vm_uuid", table_name="assets")
    op.drop_column("assets", "dependency_group")
    op.drop_column("assets", "data_stores")
    op.drop_column("assets", "rightsizing")
    op.drop_column("assets", "datacenter")
    op.drop_column("assets", "cluster")
    op.drop_column("assets", "host_name")
    op.drop_column("assets", "power_state")
    op.drop_column("assets", "vm_uuid")
    op.drop_column("asset_dependencies", "details")
    op.drop_table("dependency_observations")
