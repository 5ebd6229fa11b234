"""SQLAlchemy 2 typed models: the schema of DESIGN §3. Alembic revisions are the only DDL path."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dataimport.contracts import ImportState

IMPORT_STATUSES = tuple(state.value for state in ImportState)  # the status CHECK

# What an API key may do; each scope includes the ones before it.
API_KEY_SCOPES = ("read", "write", "admin")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TenantMixin:
    client_account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    engagement_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


class DataImport(TenantMixin, TimestampMixin, Base):
    __tablename__ = "data_imports"
    __table_args__ = (
        # import_category's CHECK follows the category registry (dataimport.category_check).
        CheckConstraint(_in_list("status", IMPORT_STATUSES), name="status"),
        Index("ix_data_imports_tenant_created", "client_account_id", "engagement_id", "created_at"),
        # A client's idempotency key names one import of its tenant, even when uploads race.
        Index(
            "uq_data_imports_tenant_request_id",
            "client_account_id",
            "engagement_id",
            "request_id",
            unique=True,
            postgresql_where=text("request_id IS NOT NULL"),
        ),
        # Finished imports whose staged rows are still there, oldest first (staging retention).
        Index(
            "ix_data_imports_staging_purgeable",
            "completed_at",
            "id",
            postgresql_where=text(
                "staging_purged_at IS NULL AND status IN "
                "('cancelled', 'completed', 'completed_with_errors', 'failed', 'rejected')"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # A compact number of the import, for what is recorded per asset field (field_sources).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), nullable=False, unique=True)
    import_category: Mapped[str] = mapped_column(Text, nullable=False)
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    file_uri: Mapped[str] = mapped_column(Text, nullable=False)
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    sha256: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    detected_format: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    processing_config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # What enrichment would change, for an import that asks for approval (approval_plan.py).
    approval_plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Bumped by every retry: a chunk started under an older generation refuses to write.
    config_generation: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    phase: Mapped[str] = mapped_column(Text, nullable=False, server_default="upload")
    master_flow_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("master_flows.flow_id", ondelete="SET NULL")
    )
    workflow_id: Mapped[str] = mapped_column(Text, nullable=False)
    total_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    valid_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    invalid_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    blank_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    warning_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    processed_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    summary: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Staging retention: claimed by the retention job / every staged row removed.
    staging_purge_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    staging_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RawImportRecord(TenantMixin, Base):
    """Staging: every row exactly as read; unique (import, row_number) makes COPY resumable."""

    __tablename__ = "raw_import_records"
    __table_args__ = (
        UniqueConstraint("data_import_id", "row_number", name="uq_raw_import_records_row"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    data_import_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("data_imports.id", ondelete="CASCADE"), nullable=False
    )
    row_number: Mapped[int] = mapped_column(Integer, nullable=False)
    raw_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    read_issues: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    is_blank: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    is_valid: Mapped[bool | None] = mapped_column(Boolean)
    superseded: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    validation_errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    normalized_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class StagedRowAsset(TenantMixin, Base):
    """A staged row processed by enrichment, with the asset it became (NULL: none, e.g. a
    connection whose source is not an asset). Narrow on purpose: linking 100k rows writes
    100k small rows instead of rewriting 100k wide staged rows (migration 0010)."""

    __tablename__ = "staged_row_assets"

    data_import_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("data_imports.id", ondelete="CASCADE"),
        primary_key=True,
    )
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class MasterFlow(TenantMixin, TimestampMixin, Base):
    __tablename__ = "master_flows"

    flow_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    flow_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="data_import")
    flow_name: Mapped[str] = mapped_column(Text, nullable=False)
    flow_status: Mapped[str] = mapped_column(Text, nullable=False)
    configuration: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    state_data: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    phase_transitions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    error_history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )


class DiscoveryFlow(TenantMixin, TimestampMixin, Base):
    __tablename__ = "discovery_flows"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    master_flow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("master_flows.flow_id", ondelete="CASCADE"), nullable=False
    )
    data_import_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("data_imports.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    )
    current_phase: Mapped[str] = mapped_column(Text, nullable=False)
    phase_state: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    status: Mapped[str] = mapped_column(Text, nullable=False)
    data_import_completed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    data_validation_completed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    enrichment_completed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportProcessingStep(TenantMixin, Base):
    __tablename__ = "import_processing_steps"
    __table_args__ = (
        UniqueConstraint("data_import_id", "step_key", name="uq_import_processing_steps_key"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    data_import_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("data_imports.id", ondelete="CASCADE"), nullable=False
    )
    step_key: Mapped[str] = mapped_column(Text, nullable=False)  # idempotency key
    step_name: Mapped[str] = mapped_column(Text, nullable=False)
    agent: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    records_processed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    findings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    model: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)


# Named once: enrichment tells a violation of it from any other (inventory.upsert_assets).
ASSET_EXTERNAL_ID_INDEX = "uq_assets_tenant_external_id"


class Asset(TenantMixin, TimestampMixin, Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint(
            "client_account_id", "engagement_id", "name_key", name="uq_assets_tenant_name_key"
        ),
        Index(
            ASSET_EXTERNAL_ID_INDEX,
            "client_account_id",
            "engagement_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        # Partial: lookups always name a value, and a full index over a mostly-NULL column is
        # so small that a planner without statistics probes it for unrelated lookups.
        *(
            Index(
                name,
                "client_account_id",
                "engagement_id",
                column,
                postgresql_where=text(f"{column} IS NOT NULL"),
            )
            for name, column in (
                ("ix_assets_tenant_ip", "ip_address"),
                ("ix_assets_tenant_hostname", "hostname_key"),
                ("ix_assets_tenant_vm_uuid", "vm_uuid"),
            )
        ),
        # An import's totals and group updates find what it wrote.
        Index("ix_assets_source_import", "source_import_id"),
        Index("ix_assets_created_by_import", "created_by_import_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_key: Mapped[str] = mapped_column(Text, nullable=False)  # lower(trim(name)): natural key
    hostname_key: Mapped[str | None] = mapped_column(Text)  # short host name, lower case
    external_id: Mapped[str | None] = mapped_column(Text)  # e.g. ServiceNow sys_id, asset tag
    asset_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="server")
    hostname: Mapped[str | None] = mapped_column(Text)
    fqdn: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(Text)
    operating_system: Mapped[str | None] = mapped_column(Text)
    os_version: Mapped[str | None] = mapped_column(Text)
    os_end_of_support: Mapped[bool | None] = mapped_column(Boolean)
    environment: Mapped[str | None] = mapped_column(Text)
    criticality: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    business_unit: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    serial_number: Mapped[str | None] = mapped_column(Text)
    operational_status: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # performance
    cpu_cores: Mapped[int | None] = mapped_column(Integer)
    memory_gb: Mapped[float | None] = mapped_column(Float)
    storage_gb: Mapped[float | None] = mapped_column(Float)
    storage_used_gb: Mapped[float | None] = mapped_column(Float)
    cpu_utilization_pct: Mapped[float | None] = mapped_column(Float)
    memory_utilization_pct: Mapped[float | None] = mapped_column(Float)
    iops: Mapped[float | None] = mapped_column(Float)
    network_throughput_mbps: Mapped[float | None] = mapped_column(Float)
    performance_observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # sensitivity
    data_classification: Mapped[str | None] = mapped_column(Text)
    compliance_scopes: Mapped[list[str] | None] = mapped_column(JSONB)
    pii_categories: Mapped[list[str] | None] = mapped_column(JSONB)
    encryption_at_rest: Mapped[bool | None] = mapped_column(Boolean)
    encryption_in_transit: Mapped[bool | None] = mapped_column(Boolean)
    # infrastructure placement and sizing
    vm_uuid: Mapped[str | None] = mapped_column(Text)
    power_state: Mapped[str | None] = mapped_column(Text)
    host_name: Mapped[str | None] = mapped_column(Text)
    cluster: Mapped[str | None] = mapped_column(Text)
    datacenter: Mapped[str | None] = mapped_column(Text)
    rightsizing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # sensitive data held on the asset (data stores, tables, categories)
    data_stores: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    quality_score: Mapped[float | None] = mapped_column(Float)
    source_import_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by_import_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Per slot of dataimport.field_sources.FIELD_ORDER: data_imports.seq of the import that
    # last wrote a value into that column, NULL if none (that module keeps it exact).
    field_sources: Mapped[list[int | None]] = mapped_column(
        ARRAY(Integer), nullable=False, server_default=text("'{}'::integer[]")
    )


class DependencyGroupMember(TenantMixin, Base):
    """An asset's connected component of the dependency graph (a move-group candidate).

    A table of its own, not a column of `assets`: labelling every asset of a large import
    then writes narrow rows with two indexes instead of rewriting wide asset rows with ten.
    No foreign key (see `AssetDependency`): rows are only written for assets just read.
    """

    __tablename__ = "dependency_group_members"
    __table_args__ = (
        Index(
            "ix_dependency_group_members_group",
            "client_account_id",
            "engagement_id",
            "group_root",
            "asset_id",
        ),
    )

    asset_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # The smallest asset id of the component; the group reads as "G-<root>".
    group_root: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class AssetDependency(TenantMixin, TimestampMixin, Base):
    """A directed edge between two assets of one tenant.

    The ends carry no foreign keys: a per-row key check locks (and WAL-logs) the referenced
    asset row, which doubled the cost of linking 1.3M edges and contended between parallel
    ranges. Edges are only ever written from joins with the tenant's assets in the same
    statement, and nothing deletes assets; anything that ever does must delete their edges
    and group rows with them.
    """

    __tablename__ = "asset_dependencies"
    __table_args__ = (
        Index(
            "uq_asset_dependencies_edge",
            "client_account_id",
            "engagement_id",
            "source_asset_id",
            "target_asset_id",
            "port",
            "protocol",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint("source_asset_id <> target_asset_id", name="not_self"),
        Index("ix_asset_dependencies_source_import", "source_import_id"),
        Index("ix_asset_dependencies_created_by_import", "created_by_import_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    source_asset_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    target_asset_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    dependency_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="declared")
    port: Mapped[int | None] = mapped_column(Integer)
    protocol: Mapped[str | None] = mapped_column(Text)
    conn_count: Mapped[int | None] = mapped_column(BigInteger)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confidence: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    source_import_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by_import_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class DependencyObservation(TenantMixin, Base):
    """One observed window of one dependency. Edge figures are sums over distinct observations,
    so re-importing the same window changes nothing and a new window adds to the totals."""

    __tablename__ = "dependency_observations"
    __table_args__ = (
        UniqueConstraint("dependency_id", "observation_key", name="uq_dependency_observations_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dependency_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("asset_dependencies.id", ondelete="CASCADE"), nullable=False
    )
    observation_key: Mapped[str] = mapped_column(Text, nullable=False)
    conn_count: Mapped[int | None] = mapped_column(BigInteger)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    data_import_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class ApiKey(TenantMixin, Base):
    """A caller's API key, for one client account and one or more of its engagements.

    Only the SHA-256 of the key is kept (the key is random and high-entropy, so a fast hash is
    enough); `prefix` is its first characters, not secret, to recognise it in listings.
    `engagement_id` is the engagement a request gets when it names none; `engagement_ids`
    lists every engagement granted, that one included. Keys are revoked, never deleted.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_in_list("scope", API_KEY_SCOPES), name="scope"),
        CheckConstraint("engagement_id = ANY (engagement_ids)", name="default_engagement_granted"),
        Index("ix_api_keys_tenant", "client_account_id", "engagement_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    engagement_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False
    )
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    prefix: Mapped[str] = mapped_column(Text, nullable=False)
    key_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
