"""The one bulk write path (``catalog.store``) on SQLite and PostgreSQL: a chunk is one
transaction with whatever the caller writes next, writers racing on the same global keys end
as if they had run one after the other (upserts update, plain imports report
``global_key_exists``, nothing fails as a whole, no duplicates), and the bulk path stores what
SQLAlchemy's own INSERT would."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, insert, select

from tests.conftest import Tenant
from tether import accounts
from tether.catalog import datasets, store
from tether.catalog.metadata_schema import load_schema
from tether.catalog.rows import normalize
from tether.catalog.store import Target, WriteResult, allocate_ids, write_rows
from tether.config import Settings
from tether.db.tables import data_row_metadata, data_rows


def _target(engine: Engine, upsert: bool = False) -> Target:
    tag = uuid.uuid4().hex[:10]
    with engine.begin() as conn:
        user_id = accounts.create_user(conn, f"w-{tag}@example.com", f"org-{tag}", None)
        caller = accounts.authenticate(conn, accounts.create_api_key(conn, f"w-{tag}@example.com"))
        ds = datasets.create(conn, caller.org_id, "d")
    return Target(caller.org_id, int(ds["id"]), user_id, upsert=upsert)


def _normal(
    engine: Engine, target: Target, prefix: str, keys: range | list[int], who: str = "a"
) -> list[tuple[int, Any]]:
    with engine.connect() as conn:
        schema = load_schema(conn, target.org_id)
    return [
        (
            index,
            normalize(
                {
                    "row_data": f"s3://b/{who}/{k}.jpg",
                    "global_key": f"{prefix}-{k}",
                    "metadata_fields": [
                        {"name": "split", "value": "train"},
                        {"name": "tag", "value": f"{who}-{k % 7}"},
                        {"name": "captureDateTime", "value": "2024-05-01T10:00:00Z"},
                    ],
                    "attachments": [{"type": "RAW_TEXT", "value": "note"}],
                },
                schema,
            ),
        )
        for index, k in enumerate(keys)
    ]


def _stored(engine: Engine, target: Target) -> dict[str, str]:
    """Global key -> row_data of the target dataset's rows."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(data_rows.c.global_key, data_rows.c.row_data).where(
                data_rows.c.dataset_id == target.dataset_id
            )
        ).all()
    keys = [k for k, _d in rows]
    assert len(keys) == len(set(keys))
    return dict(rows)  # type: ignore[arg-type]


def _value_rows(engine: Engine, target: Target) -> Counter[int]:
    """How many metadata values each row of the dataset has."""
    with engine.connect() as conn:
        ids = conn.execute(
            select(data_row_metadata.c.data_row_id).where(
                data_row_metadata.c.dataset_id == target.dataset_id
            )
        ).scalars()
        return Counter(ids)


def _write(engine: Engine, target: Target, rows: list[tuple[int, Any]]) -> WriteResult:
    """One chunk as the import runner writes it: ids from a transaction of their own on
    PostgreSQL, in the chunk's transaction on SQLite."""
    first = None if engine.dialect.name == "sqlite" else allocate_ids(engine, len(rows))
    with engine.connect() as conn, conn.begin():
        return write_rows(conn, target, rows, first)


def test_a_chunk_commits_with_the_callers_transaction(engine: Engine) -> None:
    target = _target(engine)
    prefix = uuid.uuid4().hex[:8]
    rows = _normal(engine, target, prefix, range(5))
    first = allocate_ids(engine, len(rows))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        result = write_rows(conn, target, rows, first, datetime.now(UTC))
        assert result.created == 5
        raise RuntimeError("the worker dies before recording progress")
    assert _stored(engine, target) == {}
    target.seen_keys.clear()
    with engine.begin() as conn:
        assert write_rows(conn, target, rows, first, datetime.now(UTC)).created == 5
    assert sorted(_stored(engine, target)) == sorted(f"{prefix}-{i}" for i in range(5))


@pytest.mark.parametrize("look_up_first", [True, False])
@pytest.mark.parametrize("upsert", [False, True])
def test_a_second_write_of_the_same_keys_updates_or_reports_each(
    engine: Engine, upsert: bool, look_up_first: bool
) -> None:
    """Whether the keys are looked up first (the first chunk, or after a chunk that met
    taken keys) or the insert finds them taken (after a chunk that met none)."""
    target = _target(engine, upsert)
    prefix = uuid.uuid4().hex[:8]
    assert _write(engine, target, _normal(engine, target, prefix, range(6))).created == 6
    assert target.look_up_first is False
    again = Target(target.org_id, target.dataset_id, target.user_id, upsert)
    again.look_up_first = look_up_first
    result = _write(engine, again, _normal(engine, again, prefix, range(3, 9), who="b"))
    assert result.created == 3
    stored = _stored(engine, target)
    if upsert:
        assert result.updated == 3 and result.errors == []
        assert [stored[f"{prefix}-{k}"] for k in range(3, 6)] == [
            f'"s3://b/b/{k}.jpg"' for k in range(3, 6)
        ]
    else:
        assert result.updated == 0
        assert [(e.index, e.code) for e in result.errors] == [
            (i, "global_key_exists") for i in range(3)
        ]
        assert stored[f"{prefix}-3"] == '"s3://b/a/3.jpg"'
    assert len(stored) == 9
    assert set(_value_rows(engine, target).values()) == {3}


def test_a_key_given_twice_is_an_error_for_the_second_item(engine: Engine) -> None:
    target = _target(engine, upsert=True)
    prefix = uuid.uuid4().hex[:8]
    result = _write(engine, target, _normal(engine, target, prefix, [1, 2, 1, 3, 2]))
    assert result.created == 3
    assert [(e.index, e.code) for e in result.errors] == [
        (2, "duplicate_global_key"),
        (4, "duplicate_global_key"),
    ]


def test_an_upsert_never_takes_a_key_of_another_dataset(engine: Engine) -> None:
    target = _target(engine)
    prefix = uuid.uuid4().hex[:8]
    _write(engine, target, _normal(engine, target, prefix, range(2)))
    with engine.begin() as conn:
        other = datasets.create(conn, target.org_id, "other")
    elsewhere = Target(target.org_id, int(other["id"]), target.user_id, upsert=True)
    result = _write(engine, elsewhere, _normal(engine, elsewhere, prefix, range(3)))
    assert result.created == 1
    assert [e.code for e in result.errors] == ["global_key_in_other_dataset"] * 2


def test_a_deleted_dataset_stops_the_write(engine: Engine) -> None:
    target = _target(engine)
    with engine.begin() as conn:
        datasets.mark_deleted(conn, target.org_id, target.dataset_id)
    with pytest.raises(store.DatasetGone):
        _write(engine, target, _normal(engine, target, "gone", range(2)))


@pytest.mark.parametrize("upsert", [False, True])
def test_a_key_committed_by_another_writer_after_the_lookup(engine: Engine, upsert: bool) -> None:
    """Writer A holds uncommitted rows; writer B looks its keys up (PostgreSQL: it sees none
    and its bulk insert waits for A; SQLite: it waits for A's write lock), then A commits. B's
    overlapping rows become updates (upsert) or ``global_key_exists`` errors; the rest land."""
    target = _target(engine, upsert)
    prefix = uuid.uuid4().hex[:8]
    a_rows = _normal(engine, target, prefix, range(0, 10))
    b_target = Target(target.org_id, target.dataset_id, target.user_id, upsert)
    b_rows = _normal(engine, b_target, prefix, range(5, 15), who="b")
    b_first = allocate_ids(engine, len(b_rows))
    results: list[WriteResult] = []
    failures: list[BaseException] = []

    def writer_b() -> None:
        try:
            with engine.connect() as conn, conn.begin():
                results.append(write_rows(conn, b_target, b_rows, b_first))
        except BaseException as exc:  # reported below
            failures.append(exc)

    a_first = allocate_ids(engine, len(a_rows))
    with engine.connect() as conn:
        with conn.begin():
            assert write_rows(conn, target, a_rows, a_first).created == 10
            b = threading.Thread(target=writer_b)
            b.start()
            time.sleep(0.5)  # B has looked its keys up and waits for A
            assert b.is_alive() and not results
        b.join(30)
    assert not failures, failures
    [result] = results
    assert result.created == 5
    if upsert:
        assert (result.updated, result.errors) == (5, [])
    else:
        assert result.updated == 0
        assert [(e.index, e.code) for e in result.errors] == [
            (i, "global_key_exists") for i in range(5)
        ]
    stored = _stored(engine, target)
    assert len(stored) == 15
    who = "b" if upsert else "a"
    assert [stored[f"{prefix}-{k}"] for k in range(5, 10)] == [
        f'"s3://b/{who}/{k}.jpg"' for k in range(5, 10)
    ]
    assert set(_value_rows(engine, target).values()) == {3}
    assert len(_value_rows(engine, target)) == 15


def test_a_large_chunk_that_loses_a_race_takes_bounded_locks(engine: Engine) -> None:
    """10,000 rows, a hundred of whose keys another writer commits while this chunk waits:
    the rows that land go in one statement, not a savepoint each (each one a lock held to the
    end of the transaction: a few thousand exhausted PostgreSQL's lock table, "out of shared
    memory")."""
    n = 10_000
    target = _target(engine, upsert=True)
    prefix = uuid.uuid4().hex[:8]
    a_rows = _normal(engine, target, prefix, range(0, n, 100))
    b_target = Target(target.org_id, target.dataset_id, target.user_id, upsert=True)
    b_rows = _normal(engine, b_target, prefix, range(n), who="b")
    results: list[WriteResult] = []
    failures: list[BaseException] = []
    locks: list[int] = []

    def writer_b() -> None:
        first = None if engine.dialect.name == "sqlite" else allocate_ids(engine, n)
        try:
            with engine.connect() as conn, conn.begin():
                results.append(write_rows(conn, b_target, b_rows, first))
                if conn.dialect.name == "postgresql":
                    held = "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()"
                    locks.append(conn.exec_driver_sql(held).scalar_one())
        except BaseException as exc:
            failures.append(exc)

    a_first = allocate_ids(engine, len(a_rows))
    with engine.connect() as conn:
        with conn.begin():
            write_rows(conn, target, a_rows, a_first)
            b = threading.Thread(target=writer_b)
            b.start()
            time.sleep(0.5)
        b.join(60)
    assert not failures, failures
    assert (results[0].created, results[0].updated, results[0].errors) == (n - 100, 100, [])
    assert all(held < 100 for held in locks), locks
    stored = _stored(engine, target)
    assert len(stored) == n and all("/b/" in v for v in stored.values())
    assert len(_value_rows(engine, target)) == n


@pytest.mark.parametrize("upsert", [False, True])
def test_writers_side_by_side_on_overlapping_keys(engine: Engine, upsert: bool) -> None:
    """Two writers, each its own chunks of 200 rows, over key ranges that overlap by half,
    one of them in reverse order: exact counts, every key once, no chunk failed."""
    n, chunk = 2000, 200
    target = _target(engine, upsert)
    prefix = uuid.uuid4().hex[:8]
    plans = {
        "a": list(range(0, n)),
        "b": list(range(n // 2, n + n // 2))[::-1],
    }
    totals: dict[str, WriteResult] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(who: str) -> None:
        mine = Target(target.org_id, target.dataset_id, target.user_id, upsert)
        rows = _normal(engine, mine, prefix, plans[who], who)
        total = WriteResult()
        start.wait()
        try:
            for at in range(0, len(rows), chunk):
                result = _write(engine, mine, rows[at : at + chunk])
                total.created += result.created
                total.updated += result.updated
                total.errors += result.errors
        except BaseException as exc:
            failures.append(exc)
        totals[who] = total

    threads = [threading.Thread(target=writer, args=(w,)) for w in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    a, b = totals["a"], totals["b"]
    overlap = n // 2
    assert a.created + b.created == n + overlap
    if upsert:
        assert a.updated + b.updated == overlap
        assert a.errors == b.errors == []
    else:
        assert a.updated == b.updated == 0
        errors = a.errors + b.errors
        assert len(errors) == overlap and {e.code for e in errors} == {"global_key_exists"}
    stored = _stored(engine, target)
    assert sorted(stored) == sorted(f"{prefix}-{k}" for k in range(n + overlap))
    values = _value_rows(engine, target)
    assert len(values) == n + overlap and set(values.values()) == {3}
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).where(data_rows.c.dataset_id == target.dataset_id)
        ).scalar_one()
    assert count == n + overlap


def test_bulk_rows_read_back_like_sqlalchemy_inserted_ones(engine: Engine) -> None:
    target = _target(engine)
    prefix = uuid.uuid4().hex[:8]
    rows = _normal(engine, target, prefix, [0, 7])  # the same metadata
    now = datetime(2024, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)
    first = allocate_ids(engine, 2)
    with engine.begin() as conn:
        write_rows(conn, target, rows[:1], first, now)
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
    assert ours == theirs and len(ours) == 3


def test_bulk_updates_read_back_like_the_rows_they_replace(engine: Engine) -> None:
    """An upserted row holds exactly what a fresh insert of the same item would."""
    target = _target(engine, upsert=True)
    prefix = uuid.uuid4().hex[:8]
    _write(engine, target, _normal(engine, target, prefix, range(3)))
    now = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    again = Target(target.org_id, target.dataset_id, target.user_id, upsert=True)
    with engine.begin() as conn:
        write_rows(conn, again, _normal(engine, again, prefix, range(3), who="b"), None, now)
    fresh = _target(engine)
    _write(engine, fresh, _normal(engine, fresh, prefix, range(3), who="b"))
    columns = ("global_key", "media_type", "row_data", "metadata", "attachments", "extra")
    with engine.connect() as conn:
        updated = conn.execute(
            select(*(data_rows.c[c] for c in columns), data_rows.c.updated_at)
            .where(data_rows.c.dataset_id == target.dataset_id)
            .order_by(data_rows.c.id)
        ).all()
        inserted = conn.execute(
            select(*(data_rows.c[c] for c in columns))
            .where(data_rows.c.dataset_id == fresh.dataset_id)
            .order_by(data_rows.c.id)
        ).all()
    assert [tuple(r)[:-1] for r in updated] == [tuple(r) for r in inserted]
    assert {r.updated_at.replace(tzinfo=UTC) for r in updated} == {now}
    assert set(_value_rows(engine, target).values()) == {3}


@pytest.mark.parametrize("upsert", [False, True])
def test_two_import_jobs_side_by_side_on_overlapping_keys(
    tenant: Tenant, engine: Engine, settings: Settings, upsert: bool
) -> None:
    """What two workers do: two import jobs, started together, over files with the same
    global keys in the same order (so their chunks race on every key) and keys of their own.
    Upserts: every key once, the shared ones updated, nothing failed; plain imports: each
    shared key is ``global_key_exists`` for exactly one of the two."""
    from tether.imports.runner import run_import
    from tether.jobs import service as jobs

    overlap = 2000
    ds = tenant.dataset()
    prefix = uuid.uuid4().hex[:8]
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    made = []
    shared = list(range(overlap))
    own = {"a": range(10_000, 11_000), "b": range(20_000, 21_000)}
    for who in ("a", "b"):
        keys = [*shared, *own[who]]
        upload = settings.uploads_dir / f"race-{prefix}-{who}.upload"
        upload.write_bytes(
            b"".join(
                orjson.dumps({"row_data": f"s3://b/{who}/{k}.jpg", "global_key": f"{prefix}-{k}"})
                + b"\n"
                for k in keys
            )
        )
        params = {"_upload": str(upload), "upsert": upsert, "format": "ndjson"}
        with engine.begin() as conn:
            job, _new = jobs.create(conn, tenant.org_id, "import", params, ds["id"], None, None)
        made.append(job["id"])
    start = threading.Barrier(2)

    def work(job_id: str) -> None:
        start.wait()
        run_import(engine, job_id, 500)

    threads = [threading.Thread(target=work, args=(j,)) for j in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    done = [tenant.get(f"/jobs/{j}").json() for j in made]
    created = sum(j["counts"]["created"] for j in done)
    updated = sum(j["counts"]["updated"] for j in done)
    failed = sum(j["counts"]["failed"] for j in done)
    everything = [*shared, *own["a"], *own["b"]]
    assert created == len(everything), done
    if upsert:
        assert (updated, failed) == (overlap, 0), done
        assert {j["status"] for j in done} == {"completed"}
    else:
        assert (updated, failed) == (0, overlap), done
        codes = {e["code"] for j in made for e in tenant.errors(j)}
        assert codes == {"global_key_exists"}
    with engine.connect() as conn:
        keys = list(
            conn.execute(
                select(data_rows.c.global_key).where(data_rows.c.dataset_id == ds["id"])
            ).scalars()
        )
    assert sorted(keys) == sorted(f"{prefix}-{k}" for k in everything)


def test_a_chunk_of_every_shape_is_stored_as_sqlalchemy_stores_it(engine: Engine) -> None:
    """Rows with and without each optional column, metadata values of every kind (text,
    number, neither: an embedding), a creator or none: the bulk path (on SQLite it writes the
    chunk's constants and all-NULL columns into its statements) stores the same values, of
    the same SQLite types, as SQLAlchemy's INSERT of each row."""
    target = _target(engine)
    with engine.begin() as conn:
        schema = load_schema(conn, target.org_id)
    items: list[dict[str, Any]] = []
    for i in range(6):
        item: dict[str, Any] = {"row_data": f"s3://b/shape/{i}.jpg"}
        if i % 2:
            item["global_key"] = f"shape-{uuid.uuid4().hex}"
            item["media_attributes"] = {"width": i}
            item["metadata_fields"] = [
                {"name": "tag", "value": f"t{i}"},
                {"name": "captureDateTime", "value": "2024-05-01T10:00:00Z"},
                {"name": "embedding", "value": [0.5] * 128},
            ]
        if i % 3 == 0:
            item["external_id"] = f"e{i}"
            item["attachments"] = [{"type": "RAW_TEXT", "value": "x"}]
            item["extra"] = {"k": i}
        items.append(item)
    chunks = {
        "all": items,
        "none optional": [{"row_data": i["row_data"]} for i in items],
        "keys only": [
            {"row_data": i["row_data"], "global_key": f"g-{uuid.uuid4().hex}"} for i in items
        ],
    }
    now = datetime(2024, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)
    for name, chunk in chunks.items():
        for user_id in (target.user_id, None):
            fresh = [
                {**item, "global_key": f"{item['global_key']}-{user_id}"}
                if "global_key" in item
                else item
                for item in chunk
            ]
            rows = [(n, normalize(item, schema)) for n, item in enumerate(fresh)]
            bulk = Target(target.org_id, target.dataset_id, user_id)
            first = allocate_ids(engine, len(rows))
            with engine.begin() as conn:
                write_rows(conn, bulk, rows, first, now)
            plain_first = allocate_ids(engine, len(rows))
            with engine.begin() as conn:
                for offset, (_n, norm) in enumerate(rows):
                    key = None if norm.global_key is None else f"plain-{norm.global_key}"
                    conn.execute(
                        insert(data_rows).values(
                            id=plain_first + offset,
                            org_id=target.org_id,
                            dataset_id=target.dataset_id,
                            global_key=key,
                            external_id=norm.external_id,
                            media_type=norm.media_type,
                            row_data=norm.row_data,
                            media_attributes=norm.media_attributes,
                            metadata=norm.metadata,
                            attachments=norm.attachments,
                            extra=norm.extra,
                            created_by=user_id,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    for f, t, v in norm.metadata_values:
                        conn.execute(
                            insert(data_row_metadata).values(
                                data_row_id=plain_first + offset,
                                field_key=f,
                                org_id=target.org_id,
                                dataset_id=target.dataset_id,
                                value_text=t,
                                value_num=v,
                            )
                        )
            ours = _stored_exactly(engine, first, len(rows))
            theirs = _stored_exactly(engine, plain_first, len(rows))
            for mine, plain in zip(ours[0], theirs[0], strict=True):
                key = mine["global_key"]
                assert plain["global_key"] == (None if key is None else f"plain-{key}"), name
                assert {**mine, "global_key": 0} == {**plain, "global_key": 0}, name
            assert ours[1] == theirs[1], name


def _stored_exactly(engine: Engine, first: int, count: int) -> tuple[list[Any], list[Any]]:
    """The rows ``first ..`` and their metadata values as stored, ids made relative (and, on
    SQLite, each value's storage type beside it)."""
    from sqlalchemy import literal_column

    ids = list(range(first, first + count))

    def columns(table: Any, skip: set[str]) -> list[Any]:
        out = [c for c in table.columns if c.name not in skip]
        if engine.dialect.name == "sqlite":
            out += [literal_column(f"typeof({c.name})").label(f"type_{c.name}") for c in out]
        return out

    with engine.connect() as conn:
        rows = conn.execute(
            select(data_rows.c.id, *columns(data_rows, {"id"}))
            .where(data_rows.c.id.in_(ids))
            .order_by(data_rows.c.id)
        ).all()
        values = conn.execute(
            select(data_row_metadata.c.data_row_id, *columns(data_row_metadata, {"data_row_id"}))
            .where(data_row_metadata.c.data_row_id.in_(ids))
            .order_by(data_row_metadata.c.data_row_id, data_row_metadata.c.field_key)
        ).all()
    assert [r.id for r in rows] == ids
    return (
        [{k: v for k, v in r._mapping.items() if k != "id"} for r in rows],
        [(v.data_row_id - first, *tuple(v)[1:]) for v in values],
    )


def test_metadata_values_go_to_postgresql_in_the_order_of_the_indexes() -> None:
    """The per-field sort gives exactly the order (ties kept as they came) of sorting whole
    tuples by (field, text, number): texts, numbers, embeddings (neither) and a field seen
    once; a field mixing kinds falls back to the tuples."""
    values = [
        (row, key, 1, 1, text, number)
        for row in range(1, 40)
        for key, text, number in (
            (2, ("train", "valid", "test")[row % 3], None),
            (1, f"tag-{row % 5}", None),
            (3, None, float(1_700_000_000 + (row * 7919) % 13)),
            (4, None, None),
        )
    ]
    values += [(99, 7, 1, 1, "only", None), (98, 5, 1, 1, "b", None), (97, 5, 1, 1, None, 2.0)]
    expected = sorted(values, key=store._index_order)
    ordered = list(values)
    store._in_index_order(ordered)
    assert ordered == expected
    assert ordered != values  # (the input was not in that order already)
