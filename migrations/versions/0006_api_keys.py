"""API keys: callers authenticate (DESIGN §11, "Callers").

One row per key, for a client account and one or more of its engagements, with a scope
(read < write < admin). Only the key's SHA-256 is stored, beside a short non-secret prefix
for listings; keys are revoked (revoked_at), never deleted, and remember when they were last
used (to the minute).

Revision ID: 0006_api_keys
Revises: 0005_dependency_group_members
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_api_keys"
down_revision: str | None = "0005_dependency_group_members"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "api_keys"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.Column("engagement_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('read', 'write', 'admin')", name=op.f("ck_api_keys_scope")),
        sa.CheckConstraint(
            "engagement_id = ANY (engagement_ids)",
            name=op.f("ck_api_keys_default_engagement_granted"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_tenant", TABLE, ["client_account_id", "engagement_id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant", table_name=TABLE)
    op.drop_table(TABLE)
