"""Approval gate: the plan of what enrichment would change, computed before anyone decides."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.errors import classified
from activities.heartbeat import heartbeating
from activities.tenant import tenant_scoped
from dataimport import approval_plan
from dataimport.contracts import ImportRef, PlanCounts

log = logging.getLogger("dataimport.activities.approval")


class ApprovalActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    @classified
    @tenant_scoped
    async def plan_enrichment(self, ref: ImportRef) -> PlanCounts:
        """Dry-run enrichment (rolled back), store the plan, return its counts (history
        sees counts only; samples stay in the database)."""
        async with heartbeating():
            counts = await approval_plan.compute_plan(self._engine, ref)
        log.info(
            "plan: %d assets to create, %d to update, %d dependencies to add",
            counts.assets_to_create,
            counts.assets_to_update,
            counts.dependencies_to_add,
        )
        return counts
