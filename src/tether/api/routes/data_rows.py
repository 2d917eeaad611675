from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import Connection

from tether.api import params
from tether.api.deps import CallerDep, ConnDep, SettingsDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import (
    MAX_BIGINT,
    MAX_INT,
    Assignments,
    AssignResults,
    ClearResults,
    DataRow,
    DataRowPage,
    DataRowPatch,
    DeleteResults,
    DeleteRows,
    GlobalKeys,
    KeyLookups,
    RowCount,
)
from tether.api.results import uniform
from tether.catalog import data_rows, queries
from tether.catalog.queries import MetadataFilter, RowFilter
from tether.config import Settings
from tether.errors import Invalid
from tether.resolve import resolver

router = APIRouter(prefix="/data-rows", tags=["data rows"], responses=documented(401, 422))

MAX_METADATA_FILTERS = 50
FILTER_PATTERN = "^[^:]+:(eq|gt|gte|lt|lte|contains):"
METADATA_HELP = (
    "repeatable `FIELD:OP:VALUE` (FIELD a field's name or id; the value is everything after "
    "the second `:`), OP one of eq, gt, gte, lt, lte, contains; e.g. `split:eq:valid`, "
    f"`captureDateTime:gte:2024-01-01T00:00:00Z`; at most {MAX_METADATA_FILTERS}"
)


def parse_metadata_filters(specs: list[str], tag_contains: str | None) -> list[MetadataFilter]:
    if len(specs) + bool(tag_contains) > MAX_METADATA_FILTERS:
        raise Invalid(
            f"at most {MAX_METADATA_FILTERS} metadata filters (tag_contains counts as one); "
            f"got {len(specs) + bool(tag_contains)}",
            details=[{"loc": ["query", "metadata"], "message": "too many filters"}],
        )
    out = []
    for spec in specs:
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise Invalid(f"metadata filter {spec!r} is not FIELD:OP:VALUE")
        out.append(MetadataFilter(parts[0], parts[1], parts[2]))
    if tag_contains:
        out.append(MetadataFilter("tag", "contains", tag_contains))
    return out


RowIdPath = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="a data row id")]


async def row_filter(
    dataset_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    media_type: Annotated[str | None, params.MEDIA_TYPE_QUERY] = None,
    external_id: str | None = None,
    global_key: str | None = None,
    global_key_prefix: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    metadata: Annotated[
        list[str],
        Query(
            description=METADATA_HELP,
            json_schema_extra={
                "maxItems": MAX_METADATA_FILTERS,
                "items": {"type": "string", "pattern": FILTER_PATTERN},
            },
        ),
    ] = [],  # noqa: B006
    tag_contains: Annotated[str | None, Query(description="tag holds this text")] = None,
) -> RowFilter:
    """The filters data row listing and counting share (``async``: it only parses, so it
    runs on the event loop rather than costing a thread hop)."""
    return RowFilter(
        dataset_id,
        params.media_type(media_type),
        external_id,
        global_key,
        global_key_prefix,
        _utc(created_after),
        _utc(created_before),
        parse_metadata_filters(metadata, tag_contains),
    )


def _utc(moment: datetime | None) -> datetime | None:
    """Aware UTC: a naive time means UTC, an offset is converted (SQLite stores UTC wall-clock
    text and would otherwise compare another offset's wall clock with it)."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"{moment.isoformat()} is out of the range of datetimes") from None


FilterDep = Annotated[RowFilter, Depends(row_filter)]
ResolveQuery = Annotated[
    bool,
    Query(
        description="add `resolved` to each row: its URIs as URLs a browser can load "
        "(signed by the store, or through tether with a short-lived token)"
    ),
]


def with_resolved(
    conn: Connection, settings: Settings, org_id: int, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows, each with its ``resolved`` field."""
    for row, resolved in zip(
        rows, resolver.shared(settings).resolve(conn, org_id, rows), strict=True
    ):
        row["resolved"] = resolved
    return rows


@router.get("", response_model=DataRowPage)
def list_data_rows(
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    flt: FilterDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_BIGINT, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
    resolve: ResolveQuery = False,
) -> Response:
    """Rows in creation order, one keyset page at a time (no count unless asked for)."""
    items, cursor = queries.page(conn, caller.org_id, flt, after, limit)
    if resolve:
        with_resolved(conn, settings, caller.org_id, items)
    # Rows are plain JSON already: skip re-validating them against the response model.
    return Response(
        orjson.dumps({"items": items, "next_cursor": cursor}), media_type="application/json"
    )


@router.get("/count", response_model=RowCount)
def count_data_rows(caller: CallerDep, conn: ConnDep, flt: FilterDep) -> dict[str, Any]:
    """How many rows match the list's filters; `exact` is false when PostgreSQL answered with
    its planner's estimate because an exact count would be slow."""
    total, exact = queries.count(conn, caller.org_id, flt)
    return {"count": total, "exact": exact}


@router.get(
    "/{row_id}",
    response_model=DataRow,
    response_model_exclude_unset=True,  # an attachment without a name has no name key
    responses=documented(404),
)
def get_data_row(
    row_id: RowIdPath,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    resolve: ResolveQuery = False,
) -> dict[str, Any]:
    row = queries.get(conn, caller.org_id, row_id)
    return with_resolved(conn, settings, caller.org_id, [row])[0] if resolve else row


@router.patch(
    "/{row_id}",
    response_model=DataRow,
    response_model_exclude_unset=True,
    responses=documented(
        404, 409, 413, e409="Another row holds the global key (`global_key_exists`)."
    ),
)
def update_data_row(
    row_id: RowIdPath, body: DataRowPatch, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    """Change the given fields; the row is checked again as a whole."""
    changes = body.model_dump(exclude_unset=True)
    return once(conn, lambda: data_rows.update_row(conn, caller.org_id, row_id, changes))


@router.delete("/{row_id}", status_code=204, responses=documented(404))
def delete_data_row(row_id: RowIdPath, caller: CallerDep, conn: ConnDep, once: OnceDep) -> None:
    def work() -> None:
        queries.get(conn, caller.org_id, row_id)
        data_rows.delete_many(conn, caller.org_id, ids=[row_id])

    once(conn, work)


@router.post(
    "/delete",
    response_model=DeleteResults,
    response_model_exclude_unset=True,  # an item by global key has no data_row_id, as before
    responses=documented(413),
)
def delete_data_rows(
    body: DeleteRows, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    """Delete many rows by id and/or global key; one result per item."""
    return once(
        conn,
        lambda: {
            "results": uniform(
                data_rows.delete_many(conn, caller.org_id, body.ids, body.global_keys)
            )
        },
    )


@router.post("/lookup", response_model=KeyLookups, responses=documented(413))
def lookup_global_keys(body: GlobalKeys, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    """Data row ids for global keys: one result per key, `data_row_id` null when not found."""
    return {"results": queries.ids_for_global_keys(conn, caller.org_id, body.global_keys)}


@router.post("/global-keys", response_model=AssignResults, responses=documented(413))
def assign_global_keys(
    body: Assignments, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    pairs = [a.model_dump() for a in body.assignments]
    return once(
        conn,
        lambda: {"results": uniform(data_rows.assign_global_keys(conn, caller.org_id, pairs))},
    )


@router.post("/global-keys/clear", response_model=ClearResults, responses=documented(413))
def clear_global_keys(
    body: GlobalKeys, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    return once(
        conn,
        lambda: {
            "results": uniform(data_rows.clear_global_keys(conn, caller.org_id, body.global_keys))
        },
    )
