"""The FastAPI application: `create_app(settings, engine=None, client=None)`.

Tests inject their engine and Temporal client; otherwise the lifespan connects at start-up
and disposes what it created at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from dataimport import console
from dataimport.api import (
    approval_routes,
    asset_facets_routes,
    categories_routes,
    imports_routes,
    inventory_routes,
    keys_routes,
    preview_routes,
    report_routes,
    whoami_routes,
)
from dataimport.api.errors import install_error_handlers
from dataimport.api.tenant import Access
from dataimport.auth.oidc import OidcVerifier
from dataimport.db import create_engine
from dataimport.settings import Settings
from observability.telemetry import WorkerTelemetry, worker_telemetry

API_DESCRIPTION = """
Upload files for import, follow them, fetch their error reports, decide on imports that need
attention or await approval of their plan, and read the resulting inventory. Every /api route needs
`Authorization: Bearer <API key or OIDC access token>`; the credential decides the tenant (an
`X-Engagement-ID` header may choose among the engagements it grants) and the scope: `read`
for reads, `write` for uploads and decisions, `admin` for keys. Errors come back as
`{"error": {"code": "...", "message": "..."}}`. The docs and the schema are open.
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
            from service.temporal import connect_client  # it knows the data converter

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
    app.state.oidc = OidcVerifier.from_settings(settings)
    install_error_handlers(app)
    app.include_router(imports_routes.router)
    app.include_router(approval_routes.router)
    app.include_router(inventory_routes.router)
    app.include_router(keys_routes.router)
    for module in (whoami_routes, categories_routes, report_routes, preview_routes):
        app.include_router(module.router)
    app.include_router(asset_facets_routes.router)
    app.include_router(console.router)  # the web page at /console/ (and / redirects there)
    _refuse_unguarded_routes(app)
    return app


@dataclass(frozen=True)
class ApiRoute:
    path: str
    methods: frozenset[str]
    dependant: Dependant


def api_routes(app: FastAPI) -> list[ApiRoute]:
    """Every /api route of the app, flattened out of its included routers."""
    contexts = getattr(routing, "iter_route_contexts", None)  # FastAPI ≥ 0.16x nests routers
    pairs = (
        [(str(context.path), context.original_route) for context in contexts(app.routes)]
        if contexts
        else [(str(getattr(route, "path", "")), route) for route in app.routes]
    )
    return [
        ApiRoute(path, frozenset(route.methods or ()), route.dependant)
        for path, route in pairs
        if isinstance(route, APIRoute) and path.startswith("/api/")
    ]


def _guarded(dependant: Dependant) -> bool:
    return any(isinstance(d.call, Access) or _guarded(d) for d in dependant.dependencies)


def _refuse_unguarded_routes(app: FastAPI) -> None:
    """Every /api route names the scope it needs: a new route without one cannot ship."""
    unguarded = [route.path for route in api_routes(app) if not _guarded(route.dependant)]
    if unguarded:
        raise RuntimeError(f"API routes without an Access dependency: {unguarded}")


def _tracing(settings: Settings) -> WorkerTelemetry | None:
    """With tracing configured, imports started here are traced from their start: the
    workflow and its activities join the API's trace. Metrics stay the worker's."""
    if not settings.otel_endpoint:
        return None
    return worker_telemetry(settings.model_copy(update={"metrics_bind": None}))
