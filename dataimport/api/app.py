"""The FastAPI application: `create_app(settings, engine=None, client=None)`.

Tests inject their engine and Temporal client; otherwise the lifespan connects at start-up
and disposes what it created at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport.api import imports_routes, inventory_routes
from dataimport.api.errors import install_error_handlers
from dataimport.db import create_engine
from dataimport.settings import Settings
from dataimport.telemetry import WorkerTelemetry, worker_telemetry

API_DESCRIPTION = """
Upload files for import, follow them, fetch their error reports, decide on imports that need
attention, and read the resulting inventory. Every route is scoped to the tenant named by the
`X-Client-Account-ID` and `X-Engagement-ID` headers. Errors come back as
`{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(
    settings: Settings, engine: AsyncEngine | None = None, client: Client | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine, telemetry = None, None
        if app.state.engine is None:
            own_engine = create_engine(
                settings.resolved_database_url(), pool_size=settings.db_pool_size
            )
            app.state.engine = own_engine
        if app.state.client is None:
            from worker import connect_client  # the one place that knows the data converter

            telemetry = _tracing(settings)
            app.state.client = await connect_client(settings, telemetry)
        try:
            yield
        finally:
            if own_engine is not None:
                await own_engine.dispose()
            if telemetry is not None:
                telemetry.shutdown()

    app = FastAPI(
        title="dataimport",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings, app.state.engine, app.state.client = settings, engine, client
    install_error_handlers(app)
    app.include_router(imports_routes.router)
    app.include_router(inventory_routes.router)
    return app


def _tracing(settings: Settings) -> WorkerTelemetry | None:
    """With tracing configured, imports started here are traced from their start: the
    workflow and its activities join the API's trace. Metrics stay the worker's."""
    if not settings.otel_endpoint:
        return None
    return worker_telemetry(settings.model_copy(update={"metrics_bind": None}))
