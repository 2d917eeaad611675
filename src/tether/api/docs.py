"""``/api/v1/docs``: Swagger UI served by tether itself, so the page works on a machine with
no internet. Its assets come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which
reads OpenAPI 3.1), never from a CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse
from swagger_ui_bundle import swagger_ui_path


def install(app: FastAPI, docs_url: str, openapi_url: str) -> None:
    assets = f"{docs_url}/assets"
    redirect = f"{docs_url}/oauth2-redirect"
    app.mount(assets, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API",
            oauth2_redirect_url=root + redirect,
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon-32x32.png",
        )

    @app.get(redirect, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
