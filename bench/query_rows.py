"""Catalog query benchmark (issue 6).

    python bench/query_rows.py --rows 1000000 --db sqlite
    python bench/query_rows.py --rows 10000000 --db postgresql

Loads N rows *straight into the database* (COPY / executemany, not the import API: that path
has its own benchmark, bench/import_rows.py) spread over 2 organizations x 5 datasets, each row
with split, tag (one of 1,000 values), captureDateTime (over one year) and a custom number
field `score`. Then starts `tether serve` on that database and runs each query 50 times
through the SDK, printing p50/p95 end to end, the p50 of the same SQL run directly on the
database, and whether the query plan uses an index.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, select, text

from tether import accounts
from tether.catalog import data_rows as rows_service
from tether.catalog import datasets as datasets_service
from tether.catalog import metadata_schema
from tether.catalog.data_rows import MetadataFilter, RowFilter
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.db.tables import data_row_metadata, data_rows
from tether.sdk import Client

ORGS, DATASETS_PER_ORG, TAGS = 2, 5, 1000
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
SPLIT_ID = "cko8sbczn0002h2dkdaxb5kal"
TAG_ID = "cko8s9r5v0001h2dk9elqdidh"
CAPTURE_ID = "cko8sdzv70006h2dk8jg64zvb"
MEDIA = ["IMAGE"] * 7 + ["VIDEO"] * 2 + ["TEXT"]
TARGET_PAGE_MS, TARGET_COUNT_MS = 50.0, 500.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server (a fresh database is made there)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    url, drop = _database(args.db, args.pg, work)
    try:
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        setup = _load(engine, args.rows)
        load_s = time.perf_counter() - started
        print(
            f"loaded {args.rows:,} rows straight into {args.db} in {load_s:.0f} s "
            f"({args.rows / load_s:,.0f} rows/s, data + metadata + indexes)"
        )
        _measure(engine, url, work, setup, args.runs)
    finally:
        if not args.keep:
            drop()
            shutil.rmtree(work, ignore_errors=True)


# --- the database --------------------------------------------------------------------------


def _database(kind: str, pg: str, work: Path) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        return f"sqlite:///{work / 'tether.db'}", lambda: None
    name = f"tether_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_psycopg(pg), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return _psycopg(pg.rsplit("/", 1)[0] + "/" + name), drop


def _psycopg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def _load(engine: Engine, n: int) -> dict[str, Any]:
    """Orgs, users, keys, datasets and a `score` field through the services; rows by bulk
    statements (same tables, same value encoding as the import path)."""
    setup: dict[str, Any] = {"orgs": []}
    with engine.begin() as conn:
        for o in range(ORGS):
            email = f"bench{o}-{uuid.uuid4().hex[:6]}@example.com"
            accounts.create_user(conn, email, f"bench-org-{o}-{uuid.uuid4().hex[:6]}", None)
            key = accounts.create_api_key(conn, email)
            caller = accounts.authenticate(conn, key)
            score = metadata_schema.create_field(conn, caller.org_id, "score", "number")
            ids = [
                datasets_service.create(conn, caller.org_id, f"ds-{d}")["id"]
                for d in range(DATASETS_PER_ORG)
            ]
            setup["orgs"].append(
                {"org_id": caller.org_id, "key": key, "datasets": ids, "score_id": score.id}
            )
    per_dataset = n // (ORGS * DATASETS_PER_ORG)
    next_id = 1
    rng = random.Random(7)
    indexes = _bulk_indexes()
    with engine.begin() as conn:  # loading without secondary indexes, then building them,
        for index in indexes:  # is what a bulk load into any database wants
            index.drop(conn)
    for org in setup["orgs"]:
        for dataset_id in org["datasets"]:
            _insert_rows(engine, org, dataset_id, next_id, per_dataset, rng)
            next_id += per_dataset
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        for index in indexes:
            index.create(conn)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE id_blocks SET next_id = :n WHERE name = 'data_rows'"), {"n": next_id}
        )
        for org in setup["orgs"]:
            rows_service.record_text_values(
                conn,
                org["org_id"],
                [(TAG_ID, _tag(t), None) for t in range(TAGS)]
                + [(SPLIT_ID, s, None) for s in ("train", "valid", "test")],
            )
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    setup["per_dataset"] = per_dataset
    return setup


def _bulk_indexes() -> list[Any]:
    return [i for t in (data_rows, data_row_metadata) for i in t.indexes]


def _tag(i: int) -> str:
    return f"tag-{i:04d}"


def _rows(
    org: dict[str, Any], dataset_id: int, first: int, count: int, rng: random.Random
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    now = datetime.now(UTC)
    year = 365 * 24 * 3600
    for i in range(first, first + count):
        split = ("train", "valid", "test")[rng.randrange(3)]
        tag = _tag(rng.randrange(TAGS))
        moment = YEAR_START + timedelta(seconds=rng.randrange(year))
        score = round(rng.random() * 100, 3)
        meta = [
            {"schema_id": SPLIT_ID, "name": "split", "value": split},
            {"schema_id": TAG_ID, "name": "tag", "value": tag},
            {
                "schema_id": CAPTURE_ID,
                "name": "captureDateTime",
                "value": moment.isoformat().replace("+00:00", "Z"),
            },
            {"schema_id": org["score_id"], "name": "score", "value": score},
        ]
        row = (
            i,
            org["org_id"],
            dataset_id,
            f"gk-{i:09d}",
            f"ext-{i}",
            MEDIA[i % 10],
            orjson.dumps(f"s3://bench/{dataset_id}/{i}.jpg").decode(),
            orjson.dumps(meta).decode(),
            now,
            now,
        )
        values = [
            (i, SPLIT_ID, org["org_id"], dataset_id, split, None),
            (i, TAG_ID, org["org_id"], dataset_id, tag, None),
            (i, CAPTURE_ID, org["org_id"], dataset_id, None, moment.timestamp()),
            (i, org["score_id"], org["org_id"], dataset_id, None, score),
        ]
        yield row, values


ROW_COLUMNS = (
    "id",
    "org_id",
    "dataset_id",
    "global_key",
    "external_id",
    "media_type",
    "row_data",
    "metadata",
    "created_at",
    "updated_at",
)
META_COLUMNS = ("data_row_id", "field_id", "org_id", "dataset_id", "value_text", "value_num")


def _insert_rows(
    engine: Engine, org: dict[str, Any], dataset_id: int, first: int, count: int, rng: random.Random
) -> None:
    batch = 50_000
    for start in range(first, first + count, batch):
        size = min(batch, first + count - start)
        pairs = list(_rows(org, dataset_id, start, size, rng))
        rows = [p[0] for p in pairs]
        values = [v for p in pairs for v in p[1]]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            if engine.dialect.name == "sqlite":
                rows = [
                    (*r[:-2], str(r[-2].replace(tzinfo=None)), str(r[-1].replace(tzinfo=None)))
                    for r in rows
                ]
                cursor.executemany(_insert_sql("data_rows", ROW_COLUMNS), rows)
                cursor.executemany(_insert_sql("data_row_metadata", META_COLUMNS), values)
            else:
                _copy(cursor, "data_rows", ROW_COLUMNS, rows)
                _copy(cursor, "data_row_metadata", META_COLUMNS, values)
            raw.commit()
        finally:
            raw.close()


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _copy(cursor: Any, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# --- the measurements ----------------------------------------------------------------------


def _queries(engine: Engine, setup: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, params): kind is "page", "count" or "lookup"."""
    org = setup["orgs"][0]
    dataset = org["datasets"][2]
    with engine.connect() as conn:
        deep = conn.execute(
            select(data_rows.c.id)
            .where(data_rows.c.dataset_id == dataset)
            .order_by(data_rows.c.id)
            .offset(int(setup["per_dataset"] * 0.8))
            .limit(1)
        ).scalar_one()
        some = conn.execute(
            select(data_rows.c.global_key, data_rows.c.external_id)
            .where(data_rows.c.org_id == org["org_id"])
            .order_by(data_rows.c.id)
            .offset(setup["per_dataset"] // 2)
            .limit(1)
        ).one()
    week = (datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 6, 10, tzinfo=UTC))
    md = {
        "split": {"metadata": ["split:eq:valid"]},
        "tag": {"tag_contains": "-042"},
        "week": {
            "metadata": [
                f"captureDateTime:gte:{week[0].isoformat()}",
                f"captureDateTime:lt:{week[1].isoformat()}",
            ]
        },
        "score": {"metadata": ["score:gte:10", "score:lt:12"], "media_type": "VIDEO"},
    }
    queries: list[tuple[str, str, dict[str, Any]]] = [
        ("1a dataset, first page", "page", {"dataset_id": dataset}),
        ("1b dataset, deep page (cursor)", "page", {"dataset_id": dataset, "after": deep}),
        ("2  split = valid", "page", {"dataset_id": dataset, **md["split"]}),
        ("2' split = valid, whole org", "page", md["split"]),
        ("3  tag contains '-042'", "page", {"dataset_id": dataset, **md["tag"]}),
        ("4  captureDateTime in one week", "page", {"dataset_id": dataset, **md["week"]}),
        ("5  score 10-12 and VIDEO", "page", {"dataset_id": dataset, **md["score"]}),
        ("6a external_id =", "page", {"external_id": some.external_id}),
        ("6b global_key prefix", "page", {"global_key_prefix": some.global_key[:-2]}),
        ("7  ids for 1,000 global keys", "lookup", {}),
    ]
    for name, params in md.items():
        queries.append((f"8  count: {name}", "count", {"dataset_id": dataset, **params}))
    queries.append(("8' count: split, whole org", "count", md["split"]))
    return queries


def _row_filter(params: dict[str, Any]) -> RowFilter:
    specs = [MetadataFilter(*m.split(":", 2)) for m in params.get("metadata", [])]
    if params.get("tag_contains"):
        specs.append(MetadataFilter("tag", "contains", params["tag_contains"]))
    return RowFilter(
        dataset_id=params.get("dataset_id"),
        media_type=params.get("media_type"),
        external_id=params.get("external_id"),
        global_key_prefix=params.get("global_key_prefix"),
        metadata=specs,
    )


def _sql_time_and_plan(
    engine: Engine, org_id: int, kind: str, params: dict[str, Any], runs: int
) -> tuple[float, str]:
    """The SQL the service runs for this query, timed directly, and its plan's index use."""
    with engine.connect() as conn:
        flt = _row_filter(params)
        if kind == "count":
            query = rows_service.count_query(conn, org_id, flt)[0]
        else:
            query = rows_service.page_query(conn, org_id, flt, params.get("after"), 101)
        compiled = query.compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        sql, binds = str(compiled), compiled.params
        if engine.dialect.name == "sqlite":
            sql_params: Any = tuple(binds[name] for name in compiled.positiontup or [])
            plan_rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, sql_params).all()
            plan = " | ".join(r[-1] for r in plan_rows)
        else:
            sql_params = binds
            plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, sql_params))
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            conn.exec_driver_sql(sql, sql_params).all()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), _index_use(plan)


def _index_use(plan: str) -> str:
    import re

    names = sorted(
        set(
            re.findall(
                r"(?:INDEX|Index Only Scan using|Index Scan using|"
                r"Bitmap Index Scan on) (\w+)",
                plan,
            )
        )
    )
    if "PRIMARY KEY" in plan or "INTEGER PRIMARY KEY" in plan:
        names.append("primary key")
    scans = "SCAN data_rows" in plan and "USING" not in plan.split("SCAN data_rows")[1][:20]
    if names and not scans and "Seq Scan" not in plan:
        return "index: " + ", ".join(names)
    return ("NO INDEX " if not names else "partly: ") + plan[:160]


def _measure(engine: Engine, url: str, work: Path, setup: dict[str, Any], runs: int) -> None:
    org = setup["orgs"][0]
    port = _free_port()
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(work / "data"),
        "TETHER_DATABASE_URL": url,
        "TETHER_PORT": str(port),
        "TETHER_EMBEDDED_WORKER": "false",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "tether"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = Client(f"http://127.0.0.1:{port}", org["key"])
        _wait(client)
        keys = [f"gk-{i:09d}" for i in range(1, setup["per_dataset"] * 5, 997)][:1000]
        print(f"\n{'query':36} {'p50 ms':>8} {'p95 ms':>8} {'SQL p50':>8}  target  plan")
        for label, kind, params in _queries(engine, setup):
            call = _caller(client, kind, params, keys)
            call()  # warm up
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[18]
            if kind == "lookup":
                sql_ms, plan = float("nan"), "index: uq_data_rows_org_global_key"
            else:
                sql_ms, plan = _sql_time_and_plan(engine, org["org_id"], kind, params, runs)
            limit = TARGET_COUNT_MS if kind == "count" else TARGET_PAGE_MS
            verdict = "ok" if p95 < limit else "SLOW"
            print(f"{label:36} {p50:8.1f} {p95:8.1f} {sql_ms:8.1f}  {verdict:6}  {plan}")
        _memory_while_iterating(client, server.pid, org["datasets"][0])
    finally:
        server.terminate()
        server.wait(10)


def _caller(
    client: Client, kind: str, params: dict[str, Any], keys: list[str]
) -> Callable[[], Any]:
    if kind == "lookup":
        return lambda: client.get_data_row_ids_for_global_keys(keys)
    path = "/data-rows/count" if kind == "count" else "/data-rows"
    query = {**params, "limit": 100} if kind == "page" else params
    return lambda: client._json("GET", path, params=query)


def _memory_while_iterating(client: Client, pid: int, dataset_id: int) -> None:
    import psutil

    process = psutil.Process(pid)
    before = process.memory_info().rss
    peak = before
    count = 0
    started = time.perf_counter()
    for _row in client.data_rows(page_size=1000, dataset_id=dataset_id):
        count += 1
        if count % 20_000 == 0:
            peak = max(peak, process.memory_info().rss)
    elapsed = time.perf_counter() - started
    print(
        f"\niterated all {count:,} rows of one dataset through the SDK in {elapsed:.1f} s "
        f"({count / elapsed:,.0f} rows/s); server RSS {before / 2**20:.0f} MB before, "
        f"{peak / 2**20:.0f} MB peak"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(client: Client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            client._json("GET", "/health")
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    main()
