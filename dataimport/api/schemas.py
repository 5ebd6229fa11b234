"""Response and request bodies of the API (pydantic, so the OpenAPI schema says what comes back)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from dataimport.contracts import ImportStatus, ProcessingStep

T = TypeVar("T")


class ImportAccepted(BaseModel):
    data_import_id: uuid.UUID
    workflow_id: str
    status: str = Field(description="The import's status right now (usually pending).")
    status_url: str = Field(description="Where to follow it: GET this path.")


class ImportList(BaseModel):
    items: list[ImportStatus]


class StepList(BaseModel):
    items: list[ProcessingStep]


class RetryBody(BaseModel):
    processing_config: dict[str, Any] | None = Field(
        None, description="Replaces the processing config for the rerun (e.g. column_mapping)."
    )


class FailBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why the import is failed.")


class Decision(BaseModel):
    """The answer to an accepted retry/fail: the import as the workflow saw it then."""

    accepted: bool = True
    status: ImportStatus


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class AssetOut(BaseModel):
    id: uuid.UUID
    name: str
    asset_type: str
    external_id: str | None = None
    hostname: str | None = None
    fqdn: str | None = None
    ip_address: str | None = None
    operating_system: str | None = None
    os_version: str | None = None
    os_end_of_support: bool | None = None
    environment: str | None = None
    criticality: str | None = None
    owner: str | None = None
    business_unit: str | None = None
    location: str | None = None
    operational_status: str | None = None
    cpu_cores: int | None = None
    memory_gb: float | None = None
    storage_gb: float | None = None
    storage_used_gb: float | None = None
    cpu_utilization_pct: float | None = None
    memory_utilization_pct: float | None = None
    iops: float | None = None
    network_throughput_mbps: float | None = None
    data_classification: str | None = None
    compliance_scopes: list[str] | None = None
    pii_categories: list[str] | None = None
    encryption_at_rest: bool | None = None
    encryption_in_transit: bool | None = None
    vm_uuid: str | None = None
    power_state: str | None = None
    host_name: str | None = None
    cluster: str | None = None
    datacenter: str | None = None
    rightsizing: dict[str, Any] | None = None
    dependency_group: str | None = None
    custom_attributes: dict[str, Any] = Field(default_factory=dict)
    quality_score: float | None = None
    source_import_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime


class FieldSource(BaseModel):
    """The import that last wrote a value into one field of an asset."""

    data_import_id: uuid.UUID
    filename: str
    category: str
    finished_at: datetime | None = None


class AssetDetail(AssetOut):
    field_sources: dict[str, FieldSource | None] = Field(
        default_factory=dict,
        description="Each field an import set -> the import that last set it (null: that "
        "import is gone). Assets imported before field sources were kept name their last "
        "import for every field.",
    )


class DependencyOut(BaseModel):
    id: uuid.UUID
    source_asset_id: uuid.UUID
    source_name: str
    target_asset_id: uuid.UUID
    target_name: str
    dependency_type: str
    port: int | None = None
    protocol: str | None = None
    conn_count: int | None = None
    bytes_total: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    confidence: float | None = None
    source_import_id: uuid.UUID | None = None


class DependencyGroupOut(BaseModel):
    group: str
    assets: int
    dependencies: int
    sample: list[str] = Field(description="Up to 10 member names, alphabetical.")
