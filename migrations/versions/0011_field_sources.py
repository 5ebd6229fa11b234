"""Per-field provenance of assets: which import last set each field.

`data_imports.seq` is a compact, unique number of every import (an identity column; existing
imports are numbered in creation order). `assets.field_sources` maps an asset column to the
`seq` of the import that last wrote a value into it, e.g. `{"name": 12, "cpu_cores": 31}`: a
bigint per field, not a 36-character uuid, because it sits on every asset row. Enrichment
keeps it exact in the statements that write the fields (dataimport/field_sources.py).

Existing assets only know the last import that touched them (`source_import_id`), so every
non-null field of theirs is backfilled with that import's seq: the best known, not the truth
for a field an earlier import set and the last one left alone. Assets whose last import is
gone start empty.

The backfill runs as the owner over every tenant: row security is switched from FORCE to
normal for its two statements (the owner is then exempt) and forced again.

Revision ID: 0011_field_sources
Revises: 0010_staged_row_assets
Create Date: 2026-12-01 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011_field_sources"
down_revision: str | None = "0010_staged_row_assets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE_SEQ = "uq_data_imports_seq"

# The asset columns imports write, as of this revision (written out: a revision keeps its
# meaning). The lookup keys name_key and hostname_key follow name and hostname and carry none.
TRACKED = (
    "name",
    "external_id",
    "asset_type",
    "hostname",
    "fqdn",
    "ip_address",
    "operating_system",
    "os_version",
    "os_end_of_support",
    "environment",
    "criticality",
    "owner",
    "business_unit",
    "location",
    "serial_number",
    "operational_status",
    "description",
    "cpu_cores",
    "memory_gb",
    "storage_gb",
    "storage_used_gb",
    "cpu_utilization_pct",
    "memory_utilization_pct",
    "iops",
    "network_throughput_mbps",
    "performance_observed_at",
    "data_classification",
    "compliance_scopes",
    "pii_categories",
    "encryption_at_rest",
    "encryption_in_transit",
    "vm_uuid",
    "power_state",
    "host_name",
    "cluster",
    "datacenter",
    "rightsizing",
    "data_stores",
)


def _backfill_sources() -> str:
    # jsonb_build_object takes at most 100 arguments: built in parts of 20 fields.
    parts = [TRACKED[i : i + 20] for i in range(0, len(TRACKED), 20)]
    objects = [
        "jsonb_build_object("
        + ", ".join(f"'{col}', CASE WHEN a.{col} IS NOT NULL THEN d.seq END" for col in part)
        + ")"
        for part in parts
    ]
    custom = "jsonb_build_object('custom_attributes', CASE WHEN a.custom_attributes <> '{}' THEN d.seq END)"
    return f"""
        UPDATE assets a SET field_sources = jsonb_strip_nulls({" || ".join([*objects, custom])})
        FROM data_imports d
        WHERE d.id = a.source_import_id AND d.client_account_id = a.client_account_id
          AND d.engagement_id = a.engagement_id
    """


def upgrade() -> None:
    op.add_column("data_imports", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column(
        "assets",
        sa.Column("field_sources", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    for table in ("data_imports", "assets"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        UPDATE data_imports d SET seq = o.n
        FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM data_imports) o
        WHERE o.id = d.id
        """
    )
    op.execute(_backfill_sources())
    for table in ("data_imports", "assets"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.alter_column("data_imports", "seq", nullable=False)
    op.execute("ALTER TABLE data_imports ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY")
    # New imports number on from the backfilled ones.
    op.execute(
        "SELECT setval(pg_get_serial_sequence('data_imports', 'seq'), "
        "coalesce(max(seq), 0) + 1, false) FROM data_imports"
    )
    op.create_unique_constraint(UNIQUE_SEQ, "data_imports", ["seq"])


def downgrade() -> None:
    op.drop_column("assets", "field_sources")
    op.drop_constraint(UNIQUE_SEQ, "data_imports", type_="unique")
    op.drop_column("data_imports", "seq")
