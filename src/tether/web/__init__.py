"""The web UI: pages under ``/`` (``pages.py``), their files under ``/static``. ``install``
adds both to the app; errors on a page come back as a page, not as JSON."""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from tether.api.errors import error_response
from tether.config import Settings
from tether.errors import TetherError
from tether.web import pages, project_pages

API_PREFIXES = ("/api/", "/data/")


def install(app: FastAPI, settings: Settings) -> None:
    editor = settings.editor_dir
    if (editor / "main.js").is_file():  # mounted before /static: the first match serves
        app.mount("/static/editor", StaticFiles(directory=editor), name="editor")
        app.mount("/static/fonts", StaticFiles(directory=editor / "fonts"), name="fonts")
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(project_pages.router)
    app.add_exception_handler(pages.SignInNeeded, pages.to_sign_in)

    async def _tether(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TetherError)
        if _is_page(request):
            return _error_page(request, exc.status, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.details)

    async def _invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if _is_page(request):
            return _error_page(request, 404, "There is no such page.")
        answer = api_invalid(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    api_invalid = app.exception_handlers[RequestValidationError]
    app.add_exception_handler(TetherError, _tether)
    app.add_exception_handler(RequestValidationError, _invalid)


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIXES)


def _error_page(request: Request, status: int, message: str) -> Response:
    return pages.templates.TemplateResponse(
        request,
        "error.html",
        {"caller": None, "path": request.url.path, "message": message, "status": status},
        status_code=status,
    )
