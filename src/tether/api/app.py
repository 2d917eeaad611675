"""The FastAPI application: ``create_app(settings)`` wires engine, queue and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from tether import __version__, web
from tether.accounts.throttle import SignInThrottle
from tether.api import docs, errors
from tether.api.bodies import strict_json_body
from tether.api.limits import BodyLimit
from tether.api.params import known_query_only
from tether.api.routes import annotations as annotation_routes
from tether.api.routes import (
    api_keys,
    data_rows,
    datasets,
    facets,
    health,
    jobs,
    local_files,
    metadata_schema,
    organization,
    predictions,
    probe,
    project_export,
    projects,
    proxy,
    session,
    storages,
    sync,
    tasks,
    uploads,
    users,
)
from tether.config import Settings, get_settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.runtime import build_queue

API = "/api/v1"


def create_app(settings: Settings | None = None, migrate: bool = True) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    if migrate:
        upgrade(engine)
    queue = build_queue(settings, engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.embedded_worker:
            queue.start_embedded()
        yield
        queue.stop_embedded()
        engine.dispose()

    app = FastAPI(
        title="tether",
        version=__version__,
        lifespan=lifespan,
        description="Label data where it lives: a catalog of data rows that stay "
        "in your own storage.",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(known_query_only), Depends(strict_json_body)],
    )
    app.state.settings, app.state.engine, app.state.queue = settings, engine, queue
    app.state.sign_in_throttle = SignInThrottle()
    errors.install(app)
    docs.install(app, f"{API}/docs", f"{API}/openapi.json")
    app.add_middleware(
        BodyLimit,
        limit=settings.max_json_bytes,
        upload_limit=settings.max_upload_bytes,
        asset_limit=settings.max_asset_bytes,
    )
    api = APIRouter(prefix=API)
    for module in (
        health,
        datasets,
        facets,
        data_rows,
        jobs,
        metadata_schema,
        storages,
        sync,
        uploads,
        probe,
        projects,
        annotation_routes,
        predictions,
        project_export,
        tasks,
    ):
        api.include_router(module.router)
    api.include_router(proxy.router)
    for module in (session, api_keys, users, organization):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(local_files.router)
    errors.document_csrf(app)
    web.install(app, settings)
    return app
