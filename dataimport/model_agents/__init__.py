"""Model-backed agents: advice from a language model where the rule-based agents run out.

Two jobs, both optional (per import `model_agents`, per worker the DATAIMPORT_LLM_* settings):

- `model_column_mapper`: suggests a field for headers no alias (and no column_mapping) maps.
- `model_sensitive_classifier` (sensitive_data only): suggests a classification and PII types
  for unmapped columns that neither `pii.detect_column` nor `pii.detect_value` can decide.

The model sees headers, field names and a *shape* per column ("ipv4", "integer", "text(12)"),
computed here from a few staged values; it never sees a cell value. Its answer is advisory:
schema-validated, stored in the step's findings (`model_suggestions` reads them back), never
applied by itself. Every job is one `import_processing_steps` row with model, tokens, latency
and outcome; a model problem makes that step `failed` and nothing else.

Modules: `shapes` (value shapes), `answers` (answer schemas and validation), `jobs` (prompts,
Job/JobResult, `ask`), `recording` (`plan`/`run`/`record`/`sampled_values`) and `advice`
(`model_suggestions`, `suggested_column_mapping`).
"""

from dataimport.model_agents.advice import model_suggestions, suggested_column_mapping
from dataimport.model_agents.answers import (
    MalformedAnswer,
    validate_classifications,
    validate_mappings,
)
from dataimport.model_agents.jobs import COLUMN_MAPPER, SENSITIVE_CLASSIFIER
from dataimport.model_agents.recording import run
from dataimport.model_agents.shapes import column_shape, value_shape

__all__ = [
    "COLUMN_MAPPER",
    "SENSITIVE_CLASSIFIER",
    "MalformedAnswer",
    "column_shape",
    "model_suggestions",
    "run",
    "suggested_column_mapping",
    "validate_classifications",
    "validate_mappings",
    "value_shape",
]
