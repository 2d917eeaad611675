"""Writing one chunk of validated rows: new rows in bulk, existing global keys as per-row
errors (or updates with ``upsert``), all in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from tether.catalog.data_rows import record_text_values, write_update
from tether.catalog.rows import NormalRow
from tether.db.tables import data_row_metadata, data_rows
from tether.jobs.service import ItemError


@dataclass
class ImportTarget:
    org_id: int
    dataset_id: int
    user_id: int | None
    upsert: bool
    seen_keys: set[int] = field(default_factory=set)  # hashes of this import's global keys


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    errors: list[ItemError] = field(default_factory=list)


def allocate_ids(engine: Engine, count: int) -> int:
    """Reserve ``count`` consecutive data row ids in a transaction of their own; returns the
    first. Unused ids leave gaps, which is fine."""
    with engine.begin() as conn:
        end = conn.execute(
            text(
                "UPDATE id_blocks SET next_id = next_id + :n "
                "WHERE name = 'data_rows' RETURNING next_id"
            ),
            {"n": count},
        )
        return int(end.scalar_one()) - count


def write_chunk(
    conn: Connection,
    target: ImportTarget,
    rows: list[tuple[int, NormalRow]],
    first_id: int,
    now: datetime,
) -> ChunkResult:
    result = ChunkResult()
    fresh, existing_ids = _sort_out(conn, target, rows, result)
    if fresh:
        _insert_new(conn, target, fresh, first_id, now, result)
    for (_index, row), row_id in existing_ids:
        write_update(conn, target.org_id, target.dataset_id, row_id, row, now)
        result.updated += 1
    record_text_values(conn, target.org_id, [v for _i, r in rows for v in r.metadata_values])
    return result


def _error(index: int, row: NormalRow, code: str, message: str) -> ItemError:
    return ItemError(index, code, message, row.global_key, row.external_id)


def _sort_out(
    conn: Connection, target: ImportTarget, rows: list[tuple[int, NormalRow]], result: ChunkResult
) -> tuple[list[tuple[int, NormalRow]], list[Any]]:
    """Split rows into new ones and updates; duplicates and taken keys become errors."""
    keys = [r.global_key for _i, r in rows if r.global_key is not None]
    taken: dict[str, tuple[int, int]] = {}
    if keys:
        found = conn.execute(
            select(data_rows.c.global_key, data_rows.c.id, data_rows.c.dataset_id).where(
                data_rows.c.org_id == target.org_id, data_rows.c.global_key.in_(keys)
            )
        )
        taken = {k: (i, d) for k, i, d in found}
    fresh, updates = [], []
    for index, row in rows:
        key = row.global_key
        if key is not None:
            marker = hash(key)
            if marker in target.seen_keys:
                result.errors.append(
                    _error(
                        index,
                        row,
                        "duplicate_global_key",
                        f"global key {key!r} appears earlier in this import",
                    )
                )
                continue
            target.seen_keys.add(marker)
            if key in taken:
                row_id, dataset_id = taken[key]
                if not target.upsert:
                    result.errors.append(
                        _error(
                            index,
                            row,
                            "global_key_exists",
                            f"global key {key!r} is already used by data row {row_id}",
                        )
                    )
                elif dataset_id != target.dataset_id:
                    result.errors.append(
                        _error(
                            index,
                            row,
                            "global_key_in_other_dataset",
                            f"global key {key!r} belongs to data row {row_id} in another dataset",
                        )
                    )
                else:
                    updates.append(((index, row), row_id))
                continue
        fresh.append((index, row))
    return fresh, updates


def _insert_new(
    conn: Connection,
    target: ImportTarget,
    fresh: list[tuple[int, NormalRow]],
    first_id: int,
    now: datetime,
    result: ChunkResult,
) -> None:
    records, values = _records(target, fresh, first_id, now)
    try:
        with conn.begin_nested():
            conn.execute(insert(data_rows), records)
            if values:
                conn.execute(insert(data_row_metadata), values)
        result.created += len(records)
    except IntegrityError:
        # Another writer took one of these global keys since we looked: go row by row.
        for (index, row), record in zip(fresh, records, strict=True):
            try:
                with conn.begin_nested():
                    conn.execute(insert(data_rows), [record])
                    mine = [v for v in values if v["data_row_id"] == record["id"]]
                    if mine:
                        conn.execute(insert(data_row_metadata), mine)
                result.created += 1
            except IntegrityError:
                result.errors.append(
                    _error(
                        index,
                        row,
                        "global_key_exists",
                        f"global key {row.global_key!r} is already used",
                    )
                )


def _records(
    target: ImportTarget, fresh: list[tuple[int, NormalRow]], first_id: int, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records, values = [], []
    org_id, dataset_id = target.org_id, target.dataset_id
    for offset, (_index, row) in enumerate(fresh):
        row_id = first_id + offset
        records.append(
            {
                "id": row_id,
                "org_id": org_id,
                "dataset_id": dataset_id,
                "global_key": row.global_key,
                "external_id": row.external_id,
                "media_type": row.media_type,
                "row_data": row.row_data,
                "media_attributes": row.media_attributes,
                "metadata": row.metadata,
                "attachments": row.attachments,
                "extra": row.extra,
                "created_by": target.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        for field_id, value_text, value_num in row.metadata_values:
            values.append(
                {
                    "data_row_id": row_id,
                    "field_id": field_id,
                    "org_id": org_id,
                    "dataset_id": dataset_id,
                    "value_text": value_text,
                    "value_num": value_num,
                }
            )
    return records, values
