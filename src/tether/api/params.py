"""Query strings are checked against what each route declares: a parameter no route reads
(``?mediatype=IMAGE``, a typo) is a 422 naming it, not a filter silently ignored; and a query
string has a bounded number of items, so no filter list can grow a statement past what the
database parses (SQLite: "Expression tree is too large")."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tether.catalog.media import MEDIA_TYPES, normal_media_type
from tether.errors import Invalid

MAX_QUERY_ITEMS = 64


async def known_query_only(request: Request) -> None:
    """An app-wide dependency: refuse query parameters the matched route does not declare."""
    items = request.query_params.multi_items()
    if len(items) > MAX_QUERY_ITEMS:
        raise Invalid(
            f"at most {MAX_QUERY_ITEMS} query parameters per request; got {len(items)}",
            details=[{"loc": ["query"], "message": "too many query parameters"}],
        )
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return  # pages outside the API (the docs, its OAuth2 redirect) take what they take
    declared = declared_query(route)
    unknown = sorted({name for name, _value in items if name not in declared})
    if unknown:
        expected = ", ".join(sorted(declared)) or "none"
        raise Invalid(
            f"unknown query parameter {', '.join(map(repr, unknown))}; "
            f"this operation takes: {expected}",
            details=[
                {"loc": ["query", name], "message": "unknown query parameter"} for name in unknown
            ],
        )


def media_type(value: str | None) -> str | None:
    """A ``media_type`` query parameter, checked as import checks rows (one rule)."""
    if value is None:
        return None
    try:
        return normal_media_type(value)
    except ValueError as exc:
        raise Invalid(
            str(exc), details=[{"loc": ["query", "media_type"], "message": str(exc)}]
        ) from None


def one_of(values: Iterable[str]) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` that documents an optional text parameter as an enum (the
    code checks it, with a message that says what is expected)."""
    allowed = list(values)

    def document(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema.update(type="string", enum=allowed)

    return document


# What the document says a media_type parameter takes (the server also takes any case).
MEDIA_TYPE_QUERY = Query(
    description="one of the media types, in any case", json_schema_extra=one_of(MEDIA_TYPES)
)

_DECLARED: dict[int, frozenset[str]] = {}


def declared_query(route: APIRoute) -> frozenset[str]:
    """Every query parameter the route and its dependencies read (by their public name)."""
    found = _DECLARED.get(id(route))
    if found is None:
        found = _DECLARED[id(route)] = frozenset(_walk(route.dependant))
    return found


def _walk(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _walk(sub)
    return names
