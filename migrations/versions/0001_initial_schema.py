"""Initial schema: imports, staging, master/child flows, processing steps, assets, dependencies.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 04:21:41.080694
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column("hostname_key", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("asset_type", sa.Text(), server_default="server", nullable=False),
        sa.Column("hostname", sa.Text(), nullable=True),
        sa.Column("fqdn", sa.Text(), nullable=True),
        sa.Column("ip_address", sa.Text(), nullable=True),
        sa.Column("operating_system", sa.Text(), nullable=True),
        sa.Column("os_version", sa.Text(), nullable=True),
        sa.Column("os_end_of_support", sa.Boolean(), nullable=True),
        sa.Column("environment", sa.Text(), nullable=True),
        sa.Column("criticality", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("business_unit", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("serial_number", sa.Text(), nullable=True),
        sa.Column("operational_status", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cpu_cores", sa.Integer(), nullable=True),
        sa.Column("memory_gb", sa.Float(), nullable=True),
        sa.Column("storage_gb", sa.Float(), nullable=True),
        sa.Column("storage_used_gb", sa.Float(), nullable=True),
        sa.Column("cpu_utilization_pct", sa.Float(), nullable=True),
        sa.Column("memory_utilization_pct", sa.Float(), nullable=True),
        sa.Column("iops", sa.Float(), nullable=True),
        sa.Column("network_throughput_mbps", sa.Float(), nullable=True),
        sa.Column("performance_observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data_classification", sa.Text(), nullable=True),
        sa.Column("compliance_scopes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("pii_categories", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("encryption_at_rest", sa.Boolean(), nullable=True),
        sa.Column("encryption_in_transit", sa.Boolean(), nullable=True),
        sa.Column(
            "custom_attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("source_import_id", sa.UUID(), nullable=True),
        sa.Column("created_by_import_id", sa.UUID(), nullable=True),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint(
            "client_account_id", "engagement_id", "name_key", name="uq_assets_tenant_name_key"
        ),
    )
    op.create_index(
        "ix_assets_tenant_hostname",
        "assets",
        ["client_account_id", "engagement_id", "hostname_key"],
        unique=False,
    )
    op.create_index(
        "ix_assets_tenant_ip",
        "assets",
        ["client_account_id", "engagement_id", "ip_address"],
        unique=False,
    )
    op.create_index(
        "uq_assets_tenant_external_id",
        "assets",
        ["client_account_id", "engagement_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "master_flows",
        sa.Column("flow_id", sa.UUID(), nullable=False),
        sa.Column("flow_type", sa.Text(), server_default="data_import", nullable=False),
        sa.Column("flow_name", sa.Text(), nullable=False),
        sa.Column("flow_status", sa.Text(), nullable=False),
        sa.Column(
            "configuration",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "state_data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "phase_transitions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "error_history",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("flow_id", name=op.f("pk_master_flows")),
    )
    op.create_table(
        "asset_dependencies",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("source_asset_id", sa.UUID(), nullable=False),
        sa.Column("target_asset_id", sa.UUID(), nullable=False),
        sa.Column("dependency_type", sa.Text(), server_default="declared", nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("protocol", sa.Text(), nullable=True),
        sa.Column("conn_count", sa.BigInteger(), nullable=True),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("source_import_id", sa.UUID(), nullable=True),
        sa.Column("created_by_import_id", sa.UUID(), nullable=True),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source_asset_id <> target_asset_id", name=op.f("ck_asset_dependencies_not_self")
        ),
        sa.ForeignKeyConstraint(
            ["source_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_dependencies_source_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_dependencies_target_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_dependencies")),
    )
    op.create_index(
        "uq_asset_dependencies_edge",
        "asset_dependencies",
        [
            "client_account_id",
            "engagement_id",
            "source_asset_id",
            "target_asset_id",
            "port",
            "protocol",
        ],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "data_imports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("import_category", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("file_uri", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sha256", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("detected_format", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "processing_config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("phase", sa.Text(), server_default="upload", nullable=False),
        sa.Column("master_flow_id", sa.UUID(), nullable=True),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("total_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("valid_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("invalid_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("blank_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("warning_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("processed_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "summary",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "import_category IN ('cmdb_export', 'app_discovery', 'infrastructure', 'sensitive_data')",
            name=op.f("ck_data_imports_import_category"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'ingesting', 'validating', 'enriching', 'completed', 'completed_with_errors', 'needs_attention', 'failed', 'cancelled')",
            name=op.f("ck_data_imports_status"),
        ),
        sa.ForeignKeyConstraint(
            ["master_flow_id"],
            ["master_flows.flow_id"],
            name=op.f("fk_data_imports_master_flow_id_master_flows"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_imports")),
    )
    op.create_index(
        "ix_data_imports_tenant_created",
        "data_imports",
        ["client_account_id", "engagement_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "discovery_flows",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("master_flow_id", sa.UUID(), nullable=False),
        sa.Column("data_import_id", sa.UUID(), nullable=False),
        sa.Column("current_phase", sa.Text(), nullable=False),
        sa.Column(
            "phase_state",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("data_import_completed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "data_validation_completed", sa.Boolean(), server_default="false", nullable=False
        ),
        sa.Column("enrichment_completed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["data_import_id"],
            ["data_imports.id"],
            name=op.f("fk_discovery_flows_data_import_id_data_imports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["master_flow_id"],
            ["master_flows.flow_id"],
            name=op.f("fk_discovery_flows_master_flow_id_master_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_flows")),
        sa.UniqueConstraint("data_import_id", name=op.f("uq_discovery_flows_data_import_id")),
    )
    op.create_table(
        "import_processing_steps",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("data_import_id", sa.UUID(), nullable=False),
        sa.Column("step_key", sa.Text(), nullable=False),
        sa.Column("step_name", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("records_processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "findings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_import_id"],
            ["data_imports.id"],
            name=op.f("fk_import_processing_steps_data_import_id_data_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_processing_steps")),
        sa.UniqueConstraint("data_import_id", "step_key", name="uq_import_processing_steps_key"),
    )
    op.create_table(
        "raw_import_records",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("data_import_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("raw_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("read_issues", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("is_blank", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("is_valid", sa.Boolean(), nullable=True),
        sa.Column("superseded", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("validation_errors", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("normalized_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("is_processed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("asset_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("client_account_id", sa.UUID(), nullable=False),
        sa.Column("engagement_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_import_id"],
            ["data_imports.id"],
            name=op.f("fk_raw_import_records_data_import_id_data_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_import_records")),
        sa.UniqueConstraint("data_import_id", "row_number", name="uq_raw_import_records_row"),
    )


def downgrade() -> None:
    op.drop_table("raw_import_records")
    op.drop_table("import_processing_steps")
    op.drop_table("discovery_flows")
    op.drop_index("ix_data_imports_tenant_created", table_name="data_imports")
    op.drop_table("data_imports")
    op.drop_index(
        "uq_asset_dependencies_edge",
        table_name="asset_dependencies",
        postgresql_nulls_not_distinct=True,
    )
    op.drop_table("asset_dependencies")
    op.drop_table("master_flows")
    op.drop_index(
        "uq_assets_tenant_external_id",
        table_name="assets",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index("ix_assets_tenant_ip", table_name="assets")
    op.drop_index("ix_assets_tenant_hostname", table_name="assets")
    op.drop_table("assets")
