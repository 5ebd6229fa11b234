"""Flow records: register the import and create master + child flows idempotently."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from activities.tenant import tenant_scoped
from dataimport import flows
from dataimport.contracts import CreateFlowsInput, FlowIds, RegisterInput


class FlowActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    @classified
    @tenant_scoped
    async def register_import(self, data: RegisterInput) -> None:
        await flows.register_import(self._engine, data.request, data.workflow_id)

    @activity.defn
    @classified
    @tenant_scoped
    async def create_flows(self, data: CreateFlowsInput) -> FlowIds:
        return await flows.create_flows(self._engine, data.ref, data.filename)
