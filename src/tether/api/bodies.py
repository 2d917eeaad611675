"""JSON request bodies follow the rules import files do (``catalog.manifests.loads``): a key
given twice is refused with ``duplicate_key`` instead of the last one silently winning, and an
integer JSON cannot hold exactly is refused instead of rounded. One rule on every path."""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRoute

from tether.catalog.manifests import loads
from tether.catalog.rows import RowError
from tether.errors import Invalid


async def strict_json_body(request: Request) -> None:
    """An app-wide dependency for the routes whose body is a model (the bulk import route
    streams its body itself and reads it with the import readers)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()  # starlette keeps it: the model is parsed from the same bytes
    if not body:
        return
    try:
        loads(body)
    except RowError as exc:
        raise Invalid(
            exc.message, details=[{"loc": ["body"], "code": exc.code, "message": exc.message}]
        ) from None
