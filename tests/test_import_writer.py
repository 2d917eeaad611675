"""The import writer on SQLite and PostgreSQL: a chunk is one transaction with whatever the
caller writes next, a key taken behind the writer's back becomes a per-row error, and the
bulk path stores what SQLAlchemy's own INSERT would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from tether import accounts
from tether.catalog import datasets
from tether.catalog.metadata_schema import load_schema
from tether.catalog.rows import normalize
from tether.db.tables import data_row_metadata, data_rows
from tether.imports.writer import (
    ChunkResult,
    ImportTarget,
    _insert_new,
    allocate_ids,
    write_chunk,
)


def _target(engine: Engine) -> ImportTarget:
    tag = uuid.uuid4().hex[:10]
    with engine.begin() as conn:
        user_id = accounts.create_user(conn, f"w-{tag}@example.com", f"org-{tag}", "pw")
        caller = accounts.authenticate(conn, accounts.create_api_key(conn, f"w-{tag}@example.com"))
        ds = datasets.create(conn, caller.org_id, "d")
    return ImportTarget(caller.org_id, int(ds["id"]), user_id, upsert=False)


def _normal(engine: Engine, target: ImportTarget, prefix: str, n: int) -> list[tuple[int, Any]]:
    with engine.connect() as conn:
        schema = load_schema(conn, target.org_id)
    return [
        (
            i,
            normalize(
                {
                    "row_data": f"s3://b/{prefix}/{i}.jpg",
                    "global_key": f"{prefix}-{i}",
                    "metadata_fields": [
                        {"name": "split", "value": "train"},
                        {"name": "captureDateTime", "value": "2024-05-01T10:00:00Z"},
                    ],
                    "attachments": [{"type": "RAW_TEXT", "value": "note"}],
                },
                schema,
            ),
        )
        for i in range(n)
    ]


def _keys(engine: Engine, prefix: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                select(data_rows.c.global_key).where(data_rows.c.global_key.like(f"{prefix}-%"))
            ).scalars()
        )


def test_a_chunk_commits_with_the_callers_transaction(engine: Engine) -> None:
    target = _target(engine)
    prefix = uuid.uuid4().hex[:8]
    rows = _normal(engine, target, prefix, 5)
    first = allocate_ids(engine, len(rows))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        result = write_chunk(conn, target, rows, first, datetime.now(UTC))
        assert result.created == 5
        raise RuntimeError("the worker dies before recording progress")
    assert _keys(engine, prefix) == []
    target.seen_keys.clear()
    with engine.begin() as conn:
        assert write_chunk(conn, target, rows, first, datetime.now(UTC)).created == 5
    assert _keys(engine, prefix) == sorted(f"{prefix}-{i}" for i in range(5))


def test_a_key_taken_after_the_lookup_fails_only_its_row(engine: Engine) -> None:
    target = _target(engine)
    prefix = uuid.uuid4().hex[:8]
    rows = _normal(engine, target, prefix, 4)
    now = datetime.now(UTC)
    first = allocate_ids(engine, len(rows) + 1)
    with engine.begin() as conn:  # someone else's row with the key of item 2
        conn.execute(
            insert(data_rows).values(
                id=first + len(rows),
                org_id=target.org_id,
                dataset_id=target.dataset_id,
                global_key=f"{prefix}-2",
                media_type="IMAGE",
                row_data='"s3://b/other.jpg"',
                created_at=now,
                updated_at=now,
            )
        )
    result = ChunkResult()
    with engine.begin() as conn:
        _insert_new(conn, target, rows, first, now, result)
    assert result.created == 3
    assert [(e.index, e.code, e.global_key) for e in result.errors] == [
        (2, "global_key_exists", f"{prefix}-2")
    ]
    with engine.connect() as conn:
        meta = conn.execute(
            select(data_row_metadata.c.data_row_id).where(
                data_row_metadata.c.data_row_id.in_([first + i for i in range(4)])
            )
        ).scalars()
        assert sorted(set(meta)) == [first, first + 1, first + 3]


def test_bulk_rows_read_back_like_sqlalchemy_inserted_ones(engine: Engine) -> None:
    target = _target(engine)
    prefix = uuid.uuid4().hex[:8]
    rows = _normal(engine, target, prefix, 2)
    now = datetime(2024, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)
    first = allocate_ids(engine, 2)
    with engine.begin() as conn:
        write_chunk(conn, target, rows[:1], first, now)
        norm = rows[1][1]
        conn.execute(
            insert(data_rows).values(
                id=first + 1,
                org_id=target.org_id,
                dataset_id=target.dataset_id,
                global_key=norm.global_key,
                external_id=norm.external_id,
                media_type=norm.media_type,
                row_data=norm.row_data,
                media_attributes=norm.media_attributes,
                metadata=norm.metadata,
                attachments=norm.attachments,
                extra=norm.extra,
                created_by=target.user_id,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(data_row_metadata),
            [
                {
                    "data_row_id": first + 1,
                    "field_key": f,
                    "org_id": target.org_id,
                    "dataset_id": target.dataset_id,
                    "value_text": t,
                    "value_num": n,
                }
                for f, t, n in norm.metadata_values
            ],
        )
    with engine.connect() as conn:
        bulk, plain = conn.execute(
            select(data_rows).where(data_rows.c.id.in_([first, first + 1])).order_by(data_rows.c.id)
        ).all()
        values = conn.execute(
            select(data_row_metadata)
            .where(data_row_metadata.c.data_row_id.in_([first, first + 1]))
            .order_by(data_row_metadata.c.data_row_id, data_row_metadata.c.field_key)
        ).all()
    skip = {"id", "global_key", "row_data"}
    assert {k: v for k, v in bulk._mapping.items() if k not in skip} == {
        k: v for k, v in plain._mapping.items() if k not in skip
    }
    assert bulk.created_at.replace(tzinfo=UTC) == now
    ours = [tuple(v)[1:] for v in values if v.data_row_id == first]
    theirs = [tuple(v)[1:] for v in values if v.data_row_id == first + 1]
    assert ours == theirs and len(ours) == 2
