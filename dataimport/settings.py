"""One settings object, read from the environment with defaults for the embedded stack."""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Documented demo tenant: every command defaults to it.
DEMO_CLIENT_ACCOUNT_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
DEMO_ENGAGEMENT_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")

# Custom search attributes registered on every Temporal stack (never put PII in them).
SEARCH_ATTRIBUTES: dict[str, str] = {
    "ClientAccountId": "Keyword",
    "EngagementId": "Keyword",
    "ImportCategory": "Keyword",
    "ImportStatus": "Keyword",
    "DataImportId": "Keyword",
}

STACK_FILE = "stack.json"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    dataimport_home: Path = Field(Path(".dataimport"), validation_alias=_env("DATAIMPORT_HOME"))
    # The service role (worker, API, CLI): owns nothing, row-level security applies to it.
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    # The owner of the schema, for migrations only (`dataimport migrate`, migrations/env.py);
    # unset: DATABASE_URL (a deployment with a single role).
    database_owner_url: str | None = Field(None, validation_alias=_env("DATABASE_OWNER_URL"))
    temporal_address: str | None = Field(None, validation_alias=_env("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=_env("TEMPORAL_NAMESPACE"))
    web_ui_url: str | None = Field(None, validation_alias=_env("TEMPORAL_WEB_UI_URL"))
    task_queue: str = Field("data-import", validation_alias=_env("DATAIMPORT_TASK_QUEUE"))
    storage_dir: Path | None = Field(None, validation_alias=_env("DATAIMPORT_STORAGE_DIR"))
    client_account_id: uuid.UUID = Field(
        DEMO_CLIENT_ACCOUNT_ID, validation_alias=_env("DATAIMPORT_CLIENT_ACCOUNT_ID")
    )
    engagement_id: uuid.UUID = Field(
        DEMO_ENGAGEMENT_ID, validation_alias=_env("DATAIMPORT_ENGAGEMENT_ID")
    )
    db_pool_size: int = Field(10, validation_alias=_env("DATAIMPORT_DB_POOL_SIZE"))
    max_concurrent_activities: int = Field(
        8, validation_alias=_env("DATAIMPORT_MAX_CONCURRENT_ACTIVITIES")
    )
    graceful_shutdown_seconds: float = Field(
        30.0, validation_alias=_env("DATAIMPORT_GRACEFUL_SHUTDOWN_SECONDS")
    )
    # Observability: Prometheus scrape endpoint of the worker (Temporal runtime + import
    # counters), log format, optional OpenTelemetry tracing (OTLP/HTTP endpoint).
    metrics_bind: str | None = Field(None, validation_alias=_env("DATAIMPORT_METRICS_BIND"))
    log_format: str = Field("text", validation_alias=_env("DATAIMPORT_LOG_FORMAT"))
    otel_endpoint: str | None = Field(
        None, validation_alias=_env("DATAIMPORT_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    # HTTP API.
    api_host: str = Field("127.0.0.1", validation_alias=_env("DATAIMPORT_API_HOST"))
    api_port: int = Field(8000, validation_alias=_env("DATAIMPORT_API_PORT"))
    max_upload_bytes: int = Field(2 * 1024**3, validation_alias=_env("DATAIMPORT_MAX_UPLOAD_BYTES"))
    # Optional OpenID Connect bearer tokens (API keys always work). With an issuer set, tokens
    # are verified against its JWKS (DATAIMPORT_OIDC_JWKS_URL, or the issuer's discovery
    # document), for this audience; the tenant and scope come from the claims named here.
    oidc_issuer: str | None = Field(None, validation_alias=_env("DATAIMPORT_OIDC_ISSUER"))
    oidc_audience: str | None = Field(None, validation_alias=_env("DATAIMPORT_OIDC_AUDIENCE"))
    oidc_jwks_url: str | None = Field(None, validation_alias=_env("DATAIMPORT_OIDC_JWKS_URL"))
    oidc_client_claim: str = Field(
        "client_account_id", validation_alias=_env("DATAIMPORT_OIDC_CLIENT_CLAIM")
    )
    oidc_engagement_claim: str = Field(
        "engagement_id", validation_alias=_env("DATAIMPORT_OIDC_ENGAGEMENT_CLAIM")
    )
    oidc_scope_prefix: str = Field("", validation_alias=_env("DATAIMPORT_OIDC_SCOPE_PREFIX"))
    oidc_algorithms: str = Field("RS256,ES256", validation_alias=_env("DATAIMPORT_OIDC_ALGORITHMS"))
    oidc_leeway_seconds: int = Field(
        30, ge=0, le=300, validation_alias=_env("DATAIMPORT_OIDC_LEEWAY_SECONDS")
    )
    # Optional model-backed agents: any OpenAI-compatible chat-completions endpoint.
    llm_base_url: str | None = Field(None, validation_alias=_env("DATAIMPORT_LLM_BASE_URL"))
    llm_model: str | None = Field(None, validation_alias=_env("DATAIMPORT_LLM_MODEL"))
    llm_api_key: str | None = Field(None, validation_alias=_env("DATAIMPORT_LLM_API_KEY"))
    llm_timeout_seconds: float = Field(
        30.0, validation_alias=_env("DATAIMPORT_LLM_TIMEOUT_SECONDS")
    )
    # Staging retention: staged rows of finished imports are removed after this many days by
    # the `dataimport-staging-retention` Temporal Schedule, which runs every interval.
    staging_retention_days: int = Field(
        30, ge=1, le=3650, validation_alias=_env("DATAIMPORT_STAGING_RETENTION_DAYS")
    )
    staging_retention_interval_minutes: int = Field(
        1440,
        ge=5,
        le=7 * 1440,
        validation_alias=_env("DATAIMPORT_STAGING_RETENTION_INTERVAL_MINUTES"),
    )
    staging_retention_batch_size: int = Field(
        5000, ge=100, le=100_000, validation_alias=_env("DATAIMPORT_STAGING_RETENTION_BATCH_SIZE")
    )
    # Workers create (or update) the schedule when they start; off: manage it by hand.
    staging_retention_schedule: bool = Field(
        True, validation_alias=_env("DATAIMPORT_STAGING_RETENTION_SCHEDULE")
    )

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)

    @property
    def home_dir(self) -> Path:
        return self.dataimport_home.expanduser().resolve()

    @property
    def uploads_dir(self) -> Path:
        return (self.storage_dir or self.home_dir / "uploads").expanduser().resolve()

    def embedded_stack(self) -> dict[str, str]:
        """What `dataimport up` wrote about the running embedded stack (empty when not up)."""
        path = self.home_dir / STACK_FILE
        if not path.exists():
            return {}
        data: dict[str, str] = json.loads(path.read_text())
        return data

    def resolved_database_url(self) -> str:
        url = self.database_url or self.embedded_stack().get("database_url")
        if not url:
            raise RuntimeError(
                "no database: set DATABASE_URL or start the embedded stack (dataimport up)"
            )
        return url

    def resolved_owner_database_url(self) -> str:
        """Where migrations run: the owner's URL, else the service's (one role for both)."""
        url = self.database_owner_url or (
            None if self.database_url else self.embedded_stack().get("owner_database_url")
        )
        return url or self.resolved_database_url()

    def resolved_temporal_address(self) -> str:
        address = self.temporal_address or self.embedded_stack().get("temporal_address")
        if not address:
            raise RuntimeError(
                "no Temporal server: set TEMPORAL_ADDRESS or start the embedded stack "
                "(dataimport up)"
            )
        return address

    def resolved_web_ui_url(self) -> str | None:
        return self.web_ui_url or self.embedded_stack().get("web_ui_url")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def redacted_url(url: str) -> str:
    """The URL without its password (for `dataimport info`, logs, messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def async_database_url(url: str) -> str:
    """SQLAlchemy URL with the asyncpg driver for a plain postgresql:// URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url
