"""Compact per-field provenance: `assets.field_sources` from jsonb to a positional integer[].

Slot i holds the seq of the import that last set column `FIELD_ORDER[i - 1]` (NULL: none),
~4 bytes per set field instead of ~12 bytes of key and value in a jsonb object
(dataimport/field_sources.py says why). The order is written out here as of this revision (a
revision keeps its meaning); the module's FIELD_ORDER only ever appends to it. Keys of the old
object outside that order (none are written) are dropped.

`ALTER COLUMN … TYPE … USING` rewrites the table once as the owner: row security does not
apply to it, so every tenant's assets are converted. Downgrade builds the object back.

Revision ID: 0012_compact_field_sources
Revises: 0011_field_sources
Create Date: 2026-12-01 23:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_compact_field_sources"
down_revision: str | None = "0011_field_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELD_ORDER = (
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
    "custom_attributes",
)
# jsonb_build_object takes at most 100 arguments: the object is built in parts of 40 fields.
_PART = 40


def _retype(sql_type: str, using: str, default: str) -> None:
    op.execute(
        f"""
        ALTER TABLE assets ALTER COLUMN field_sources DROP DEFAULT,
          ALTER COLUMN field_sources TYPE {sql_type} USING {using},
          ALTER COLUMN field_sources SET DEFAULT {default}
        """
    )


def upgrade() -> None:
    slots = ", ".join(f"CAST(field_sources ->> '{col}' AS integer)" for col in FIELD_ORDER)
    _retype("integer[]", f"ARRAY[{slots}]", "'{}'::integer[]")


def downgrade() -> None:
    parts = [
        "jsonb_build_object("
        + ", ".join(
            f"'{col}', field_sources[{i}]"
            for i, col in enumerate(FIELD_ORDER[start : start + _PART], start=start + 1)
        )
        + ")"
        for start in range(0, len(FIELD_ORDER), _PART)
    ]
    _retype("jsonb", f"jsonb_strip_nulls({' || '.join(parts)})", "'{}'::jsonb")
