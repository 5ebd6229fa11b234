"""Temporal activities: thin wrappers over the domain package, one module per phase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.approval import ApprovalActivities
from activities.completion import CompletionActivities
from activities.enrichment import EnrichmentActivities
from activities.flows import FlowActivities
from activities.ingest import IngestActivities
from activities.model_agents import ModelAgentActivities
from activities.validation import ValidationActivities
from dataimport.settings import Settings, get_settings


def build_activities(
    engine: AsyncEngine, settings: Settings | None = None
) -> list[Callable[..., Any]]:
    """Every activity of the import workflow, bound to one database engine per worker.

    `settings` (default: from the environment) names the storage folder workers read files
    from (and nothing outside it) and configures the optional model endpoint.
    """
    settings = settings or get_settings()
    ingest = IngestActivities(engine, settings.uploads_dir)
    flows = FlowActivities(engine)
    validation = ValidationActivities(engine)
    enrichment = EnrichmentActivities(engine)
    completion = CompletionActivities(engine)
    model = ModelAgentActivities(engine, settings)
    approval = ApprovalActivities(engine)
    return [
        ingest.ingest_file,
        flows.register_import,
        flows.create_flows,
        validation.prepare_validation,
        validation.validate_chunk,
        validation.finalize_validation,
        enrichment.refresh_statistics,
        enrichment.prepare_enrichment,
        enrichment.analyze_inventory,
        enrichment.enrich_chunk,
        enrichment.link_chunk,
        enrichment.enrich_and_link_chunk,
        enrichment.finalize_enrichment,
        completion.record_status,
        completion.save_processing_config,
        model.run_model_agents,
        approval.plan_enrichment,
    ]
