"""Validation agents run on every staged row, and how their findings are attributed.

Every category runs the common agents; a category adds its own through `agents`. Issues the
readers and the category's own typing raise carry no agent: they belong to the
format_validator, except the few codes listed in `AGENT_BY_CODE`.
"""

from __future__ import annotations

from collections.abc import Sequence

from dataimport.agents.base import RowContext, ValidationAgent
from dataimport.agents.data_quality import DataQualityAssessor
from dataimport.agents.privacy_analyzer import PrivacyAnalyzer
from dataimport.agents.security_scanner import SecurityScanner
from dataimport.issues import Code

FORMAT_VALIDATOR = "format_validator"
AGENT_BY_CODE = {
    Code.FORMULA_INJECTION.value: "security_scanner",
    Code.DUPLICATE_KEY.value: "data_quality_assessor",
    Code.DUPLICATE_EXTERNAL_ID.value: "data_quality_assessor",
}


def common_agents(masks_values: bool) -> list[ValidationAgent]:
    """The agents of every category; PII is expected (not unexpected) where values are masked."""
    agents: list[ValidationAgent] = [SecurityScanner()]
    if not masks_values:
        agents.append(PrivacyAnalyzer())
    return agents


def agents_for(masks_values: bool, extra: Sequence[ValidationAgent]) -> list[ValidationAgent]:
    """Common agents, the category's own, then data quality (it scores the findings of all)."""
    return [*common_agents(masks_values), *extra, DataQualityAssessor()]


def agent_names(masks_values: bool, extra: Sequence[ValidationAgent]) -> list[str]:
    return [FORMAT_VALIDATOR, *(agent.name for agent in agents_for(masks_values, extra))]


__all__ = ["AGENT_BY_CODE", "FORMAT_VALIDATOR", "RowContext", "ValidationAgent", "agents_for"]
