"""Model-backed agents: advice from an OpenAI-compatible endpoint, recorded as steps.

Never raises for a model problem (timeout, HTTP error, malformed answer): that is a failed
step, and the import goes on. A database problem raises as usual.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.tenant import tenant_scoped
from dataimport import model_agents, pii
from dataimport.categories import get_category
from dataimport.contracts import ModelAgentsInput, ModelAgentsResult
from dataimport.llm import ChatClient
from dataimport.settings import Settings

# One call never outlasts this, whatever is configured: the workflow's start_to_close
# (MODEL_AGENTS_TIMEOUT there) must cover one call plus the database work around it.
MAX_CALL_SECONDS = 120.0


def chat_client(settings: Settings) -> ChatClient | None:
    """The configured endpoint, or None: the jobs are then recorded as skipped_unconfigured."""
    if not (settings.llm_configured and settings.llm_base_url and settings.llm_model):
        return None
    return ChatClient(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_seconds=min(settings.llm_timeout_seconds, MAX_CALL_SECONDS),
    )


class ModelAgentActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._client = chat_client(settings)

    @activity.defn
    @tenant_scoped
    async def run_model_agents(self, data: ModelAgentsInput) -> ModelAgentsResult:
        async with heartbeating():
            results = await model_agents.run(
                self._engine, data.ref, data.processing_config, self._client
            )
        # The advice travels through history into the failure message: in a category that
        # masks values a header may be a data row's value (a file without a header row).
        shown = pii.mask_value if get_category(data.ref.category).masks_values else str
        mapping = {
            shown(item["header"]): item["field"]
            for result in results
            if result.agent == model_agents.COLUMN_MAPPER
            for item in result.suggestions
        }
        return ModelAgentsResult(
            outcomes={result.agent: result.outcome for result in results},
            suggested_column_mapping=mapping,
        )
