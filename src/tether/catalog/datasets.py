"""Datasets: named collections of data rows, unique by name within an organization.

A dataset being deleted (``deleted_at`` set) is gone for every lookup here at once; its rows
go in chunks, in a ``delete_dataset`` job (``catalog.deletion``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.db.tables import data_rows, datasets, jobs
from tether.errors import Conflict, Invalid, NotFound
from tether.timeutil import iso

MAX_ID = 2**31 - 1  # the id column is an INTEGER
COLUMNS = (
    datasets.c.id,
    datasets.c.name,
    datasets.c.description,
    datasets.c.created_at,
    datasets.c.updated_at,
    datasets.c.created_by,
)
LIVE = datasets.c.deleted_at.is_(None)  # not being deleted


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("a dataset name needs 1 to 200 characters")
    return name


def create(
    conn: Connection, org_id: int, name: str, description: str = "", created_by: int | None = None
) -> dict[str, Any]:
    name = _check_name(name)
    now = datetime.now(UTC)
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                insert(datasets)
                .values(
                    org_id=org_id,
                    name=name,
                    description=description or "",
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                )
                .returning(datasets.c.id)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a dataset named {name!r} exists already") from None
    return get(conn, org_id, int(new_id))


def list_all(conn: Connection, org_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(*COLUMNS).where(datasets.c.org_id == org_id, LIVE).order_by(datasets.c.name)
    ).mappings()
    return [_public(r) for r in rows]


def summaries(conn: Connection, org_id: int) -> list[dict[str, Any]]:
    """``list_all`` with each dataset's ``row_count`` and ``last_sync_at`` (when its latest
    sync finished), for a list a person reads."""
    items = list_all(conn, org_id)
    ids = [d["id"] for d in items]
    counts: dict[int, int] = {}
    synced: dict[int, Any] = {}
    if ids:
        counts = dict(
            conn.execute(
                select(data_rows.c.dataset_id, func.count())
                .where(data_rows.c.dataset_id.in_(ids))
                .group_by(data_rows.c.dataset_id)
            ).all()
        )
        synced = dict(
            conn.execute(
                select(jobs.c.dataset_id, func.max(jobs.c.finished_at))
                .where(jobs.c.org_id == org_id, jobs.c.kind == "sync", jobs.c.dataset_id.in_(ids))
                .group_by(jobs.c.dataset_id)
            ).all()
        )
    for d in items:
        d["row_count"] = int(counts.get(d["id"], 0))
        d["last_sync_at"] = iso(synced.get(d["id"]))
    return items


def _public(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("created_at", "updated_at"):
        out[key] = iso(out[key])
    return out


def is_id(value: int | str) -> bool:
    """An id is an int or a string of ASCII digits (``"24"``, ``"0024"``); anything else
    (``" 24"``, ``"24.0"``, ``"٢٤"``) is a name."""
    return isinstance(value, int) or (value.isascii() and value.isdigit())


def get(
    conn: Connection, org_id: int, id_or_name: int | str, with_count: bool = False
) -> dict[str, Any]:
    """By id when given an id (see ``is_id``: digits are always an id, even when a dataset is
        named so), else by name (compared stripped, as names are stored). ``find_by_name`` finds
    any name."""
    query = select(*COLUMNS).where(datasets.c.org_id == org_id, LIVE)
    if is_id(id_or_name):
        dataset_id = int(id_or_name)
        row = None
        if 0 < dataset_id <= MAX_ID:
            row = conn.execute(query.where(datasets.c.id == dataset_id)).mappings().first()
        if row is None:
            raise NotFound(f"no dataset with id {dataset_id}")
    else:
        name = str(id_or_name).strip()
        row = conn.execute(query.where(datasets.c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"no dataset named {id_or_name!r}")
    out = _public(row)
    if with_count:
        out["row_count"] = conn.execute(
            select(func.count()).select_from(data_rows).where(data_rows.c.dataset_id == out["id"])
        ).scalar_one()
    return out


def find_by_name(conn: Connection, org_id: int, name: str) -> list[dict[str, Any]]:
    """The dataset of this name (names are stored stripped, so the name is too): [] or one."""
    rows = conn.execute(
        select(*COLUMNS).where(datasets.c.org_id == org_id, datasets.c.name == name.strip())
    ).mappings()
    return [_public(r) for r in rows]


def rename(
    conn: Connection,
    org_id: int,
    id_or_name: int | str,
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    current = get(conn, org_id, id_or_name)
    values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if name is not None:
        values["name"] = _check_name(name)
    if description is not None:
        values["description"] = description
    try:
        with conn.begin_nested():
            conn.execute(update(datasets).where(datasets.c.id == current["id"]).values(**values))
    except IntegrityError:
        raise Conflict(f"a dataset named {values.get('name')!r} exists already") from None
    return get(conn, org_id, int(current["id"]))


def mark_deleted(conn: Connection, org_id: int, id_or_name: int | str) -> tuple[int, int]:
    """Take a dataset out of every lookup and listing (its name is free again at once);
    returns its id and how many rows it holds, for the job that deletes them."""
    dataset_id = int(get(conn, org_id, id_or_name)["id"])
    rows = conn.execute(
        select(func.count()).select_from(data_rows).where(data_rows.c.dataset_id == dataset_id)
    ).scalar_one()
    marked = conn.execute(
        update(datasets)
        .where(datasets.c.id == dataset_id, LIVE)
        .values(deleted_at=datetime.now(UTC))
    ).rowcount
    if not marked:  # deleted meanwhile by another request
        raise NotFound(f"no dataset {id_or_name!r}")
    return dataset_id, int(rows)
