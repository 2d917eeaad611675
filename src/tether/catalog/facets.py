"""Facets of a dataset: how many rows hold each value of its text and enum metadata fields
(``split``, ``tag``, custom enums) and how capture dates spread, for a person to read at a
glance and click to narrow a listing.

Counts read the per-value index of ``data_row_metadata`` (dataset, field, value): one
index range a field, no table rows. Values beyond the ``top`` most frequent are summed in
``other``. Dates are bucketed into ``buckets`` equal spans between the first and the last.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Integer, cast, func, select

from tether.catalog import datasets
from tether.catalog.metadata_schema import load_schema
from tether.db.tables import data_row_metadata as m

TOP = 12
BUCKETS = 16


def facets(
    conn: Connection, org_id: int, dataset: int | str, *, top: int = TOP, buckets: int = BUCKETS
) -> dict[str, Any]:
    """``{"values": [{field, kind, counts: [{value, count}], other}], "dates": [{field,
    buckets: [{start, end, count}]}]}`` for the dataset's fields that hold values."""
    dataset_id = int(datasets.get(conn, org_id, dataset)["id"])
    schema = load_schema(conn, org_id)
    values: list[dict[str, Any]] = []
    dates: list[dict[str, Any]] = []
    for field in schema.fields:
        if field.kind in ("string", "enum"):
            found = _value_counts(conn, dataset_id, field.key)
            if found:
                values.append(
                    {
                        "field": field.name,
                        "kind": field.kind,
                        "counts": [{"value": v, "count": n} for v, n in found[:top]],
                        "other": sum(n for _v, n in found[top:]),
                    }
                )
        elif field.kind == "datetime":
            spread = _date_buckets(conn, dataset_id, field.key, buckets)
            if spread:
                dates.append({"field": field.name, "buckets": spread})
    return {"dataset_id": dataset_id, "values": values, "dates": dates}


def _value_counts(conn: Connection, dataset_id: int, field_key: int) -> list[tuple[str, int]]:
    n = func.count().label("n")
    rows = conn.execute(
        select(m.c.value_text, n)
        .where(
            m.c.dataset_id == dataset_id, m.c.field_key == field_key, m.c.value_text.is_not(None)
        )
        .group_by(m.c.value_text)
        .order_by(n.desc(), m.c.value_text)
    ).all()
    return [(str(v), int(c)) for v, c in rows]


def _date_buckets(
    conn: Connection, dataset_id: int, field_key: int, buckets: int
) -> list[dict[str, Any]]:
    where = (m.c.dataset_id == dataset_id, m.c.field_key == field_key, m.c.value_num.is_not(None))
    low, high = conn.execute(
        select(func.min(m.c.value_num), func.max(m.c.value_num)).where(*where)
    ).one()
    if low is None:
        return []
    span = (float(high) - float(low)) / buckets or 1.0
    index = cast((m.c.value_num - low) / span, Integer).label("i")  # >= 0: truncation floors
    counts = dict.fromkeys(range(buckets), 0)
    for i, count in conn.execute(select(index, func.count()).where(*where).group_by(index)):
        counts[min(int(i), buckets - 1)] += int(count)
    return [
        {"start": _iso(low + i * span), "end": _iso(low + (i + 1) * span), "count": counts[i]}
        for i in range(buckets)
    ]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
