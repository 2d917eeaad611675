"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tether.errors import TetherError
from tether.schemas import ErrorResponse

log = logging.getLogger(__name__)
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
    429: "rate_limited",
}


# What each status means in tether, as operations document it (a route can say more).
MEANINGS = {
    401: "No valid API key (`unauthorized`).",
    403: "The key's user may not do this (`forbidden`).",
    404: "No such thing in the caller's organization (`not_found`).",
    409: "It clashes with what exists (`conflict`, or a more precise code).",
    413: "The request body is larger than the server's limit (`too_large`).",
    416: "The `Range` holds none of the object's bytes (`range_not_satisfiable`); "
    "`Content-Range: bytes */<size>` gives its size.",
    429: "Too many attempts (`rate_limited`); wait `Retry-After` seconds.",
    422: "A value in the path, query or body is wrong, or a query parameter is unknown "
    "(`invalid`, or a more precise code); `details` says where.",
}


def documented(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of an operation: each status it can answer, in the one error shape.
    ``why`` adds a route's own reason, keyed ``e409="a dataset of that name exists"``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = MEANINGS[status]
        if f"e{status}" in why:
            text = f"{text} {why[f'e{status}']}"
        out[status] = {"model": ErrorResponse, "description": text}
    return out


CSRF_NOTE = (
    "A request signed in with the session cookie (the web UI) is refused without the "
    "session's `X-CSRF-Token` header (`csrf_failed`)."
)
UNSAFE_METHODS = ("post", "put", "patch", "delete")
COOKIE_SCHEME = "APIKeyCookie"  # the security scheme of the session cookie


def document_csrf(app: FastAPI) -> None:
    """Every unsafe operation a session cookie can sign (its security lists the cookie) can
    answer 403 ``csrf_failed``: the check lives in the caller dependency, not in one route,
    so the document says so on each of them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                schemes = {name for option in operation.get("security", []) for name in option}
                if method not in UNSAFE_METHODS or COOKIE_SCHEME not in schemes:
                    continue
                responses = operation["responses"]
                forbidden = responses.setdefault(
                    "403", {**responses["401"], "description": CSRF_NOTE}
                )
                if "csrf_failed" not in forbidden["description"]:
                    forbidden["description"] += " " + CSRF_NOTE
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429 and isinstance(details, dict) and "retry_after" in details:
        headers = {"Retry-After": str(details["retry_after"])}
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(TetherError)
    async def _tether(_request: Request, exc: TetherError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        message = f"{where}: {first['message']}" if where else str(first["message"])
        return error_response(422, "invalid", message, details)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, STATUS_CODES.get(exc.status_code, "error"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error")
