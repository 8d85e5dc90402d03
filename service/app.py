"""The FastAPI app factory: settings, database, routers, error handlers; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.admission import Admission, default_limit
from service.api import analysis, health, studies, trials
from service.auth import check_exposure
from service.errors import install_error_handlers
from service.launcher import Launcher
from service.middleware import BodySizeLimit, TrustedHosts
from studies.db import make_engine, session_factory
from studies.migrations import upgrade
from studies.settings import Settings


def create_app(
    settings: Settings, *, launcher: Launcher | None = None, ray_dashboard: str | None = None
) -> FastAPI:
    """The decaylab API over the database of `settings`.

    Args:
        launcher: submits studies to Ray; without one, the write routes that need Ray answer
            503 and everything else works.
        ray_dashboard: the Ray dashboard's URL, shown by /health (and so by the CLI).
    """
    check_exposure(settings)
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    # Sync routes run on anyio's worker threads (40 by default): a connection for each, so no
    # request waits for the pool. Trials never connect: the driver's recorder is the one writer.
    engine = make_engine(url, pool_size=10, max_overflow=30)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(engine)  # the service and a driver may race here; upgrade serializes them
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="decaylab",
        summary="Weight-decay studies on Ray Tune + Optuna, results in SQL.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = session_factory(engine)
    app.state.launcher = launcher
    app.state.admission = Admission(settings.max_running_studies or default_limit())
    app.state.ray_dashboard = ray_dashboard
    install_error_handlers(app)
    # the last added runs first: a body over the limit is refused before anything reads it
    app.add_middleware(TrustedHosts, hosts=settings.resolved_trusted_hosts())
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (health, studies, trials, analysis):
        app.include_router(module.router)
    if not settings.api_key:  # then no route asks for one, and the schema must not say so
        app.openapi = lambda: _schema_without_security(app)  # type: ignore[method-assign]
    return app


def _schema_without_security(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)  # builds and caches app.openapi_schema
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    schema.get("components", {}).pop("securitySchemes", None)
    return schema
