"""Bulk import benchmark (issue 2, section 13).

    python bench/import_rows.py                      # 1,000,000 rows into SQLite
    python bench/import_rows.py --rows 200000 --db postgresql

Starts a real ``tether serve`` (fresh data dir; for PostgreSQL a fresh database), makes a user
and an API key with the ``tether`` command, then streams N Labelbox-style rows (global_key,
external_id, row_data URL, 3 metadata fields: split, tag, captureDateTime; 1 attachment)
through the SDK's ``dataset.create_data_rows(generator)`` and waits for the job. It prints:

- rows/s end to end (from the first byte sent to the job's completion),
- the peak RSS of the server's process tree and of this client, sampled during the run,
- the rows/s of the fastest raw way to store everything tether stores for the same rows
  (the data_rows columns and their metadata values, the same content, into fresh tables of
  the same shape: constraints, indexes) in the same kind of database, in the same run:
  ``COPY`` on PostgreSQL, the driver's ``executemany`` on SQLite, committed every 10,000
  rows; and the ratio of the two, the import's target (>= 0.8 on both databases);
- on SQLite also the raw ``executemany`` with the statement shapes tether's writer uses (the
  chunk's constants and all-NULL columns written into the statement, metadata values in a
  statement per value column), which binds about a quarter less: the same ratio against it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from _common import (
    PeakRss,
    cli,
    cpu_seconds,
    end_profile,
    pg_database,
    profile,
    psycopg_url,
    raw_floor_engine,
    server,
)

from tether.sdk import Client

TARGET_ROWS_S, TARGET_RATIO, TARGET_RSS_MB = 100_000, 0.8, 500
SPLITS = ("train", "valid", "test")
BASELINE_BATCH = 10_000


# --- the rows ----------------------------------------------------------------------------------


def capture_time(i: int) -> str:
    return f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"


def rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "row_data": f"https://storage.example.com/bench/images/{i:08d}.jpg",
            "global_key": f"bench-{i:08d}",
            "external_id": f"ext-{i:08d}",
            "metadata_fields": [
                {"name": "split", "value": SPLITS[i % 3]},
                {"name": "tag", "value": f"tag-{i % 100}"},
                {"name": "captureDateTime", "value": capture_time(i)},
            ],
            "attachments": [{"type": "RAW_TEXT", "value": f"camera {i % 8}"}],
        }


# --- databases ---------------------------------------------------------------------------------


def baseline(db: str, url: str | None, work: Path, n: int, shaped: bool = False) -> float:
    """Seconds the raw driver takes to store the same n rows as tether stores them (same
    column values, their metadata values too) into fresh data_rows and data_row_metadata
    tables of the same shape: COPY on PostgreSQL, executemany on SQLite (``shaped``: with
    the statement shapes of tether's SQLite writer)."""
    from tether.db import tables

    base = work / ("baseline-shaped" if shaped else "baseline")
    base.mkdir()
    sa_url = f"sqlite:///{base / 'raw.db'}" if db == "sqlite" else psycopg_url(str(url))
    made = [tables.organizations, tables.datasets, tables.data_rows, tables.data_row_metadata]
    engine = raw_floor_engine(sa_url, made)
    now = datetime.now(UTC)
    engine.dispose()
    columns = [c.name for c in tables.data_rows.columns]
    marks = "?" if db == "sqlite" else "%s"
    sql = (
        f"INSERT INTO data_rows ({', '.join(columns)}) VALUES ({', '.join([marks] * len(columns))})"
    )
    value_sql = f"INSERT INTO data_row_metadata VALUES ({', '.join([marks] * 6)})"
    stamp: Any = now.isoformat(sep=" ") if db == "sqlite" else now
    literal = {"org_id": "1", "dataset_id": "1", "created_by": "1"}
    literal |= {"created_at": f"'{stamp}'", "updated_at": f"'{stamp}'"}
    literal |= {"media_attributes": "NULL", "extra": "NULL"}  # NULL in every row here
    shaped_sql = (
        f"INSERT INTO data_rows ({', '.join(columns)}) VALUES "
        f"({', '.join(literal.get(c, '?') for c in columns)})"
    )
    kept = [i for i, c in enumerate(columns) if c not in literal]
    text_sql = "INSERT INTO data_row_metadata VALUES (?, ?, 1, 1, ?, NULL)"
    number_sql = "INSERT INTO data_row_metadata VALUES (?, ?, 1, 1, NULL, ?)"
    from tether.catalog.metadata_schema import RESERVED

    field_ids = {f.name: f.id for f in RESERVED}
    field_keys = {f.name: f.key for f in RESERVED}

    def values(i: int, row: dict[str, Any]) -> list[tuple[Any, ...]]:
        split, tag, moment = (m["value"] for m in row["metadata_fields"])
        stamp = datetime.fromisoformat(moment).timestamp()
        return [
            (i + 1, field_keys["split"], 1, 1, split, None),
            (i + 1, field_keys["tag"], 1, 1, tag, None),
            (i + 1, field_keys["captureDateTime"], 1, 1, None, stamp),
        ]

    def stored(i: int, row: dict[str, Any]) -> tuple[Any, ...]:
        meta = [
            {"schema_id": field_ids[m["name"]], "name": m["name"], "value": m["value"]}
            for m in row["metadata_fields"]
        ]
        return (
            i + 1,
            1,
            1,
            row["global_key"],
            row["external_id"],
            "IMAGE",
            orjson.dumps(row["row_data"]).decode(),
            None,
            orjson.dumps(meta).decode(),
            orjson.dumps(row["attachments"]).decode(),
            None,
            1,
            stamp,
            stamp,
        )

    if db == "sqlite":
        import sqlite3

        from tether.db.engine import SQLITE_PRAGMAS

        conn: Any = sqlite3.connect(base / "raw.db")
        # The settings of the import's own connection (foreign keys unchecked, as it has them).
        for pragma in (*SQLITE_PRAGMAS, "PRAGMA foreign_keys=OFF"):
            conn.execute(pragma)
    else:
        import psycopg

        conn = psycopg.connect(str(url))
    spent = 0.0
    source = enumerate(rows(n))
    try:
        while pairs := list(islice(source, BASELINE_BATCH)):
            batch = [stored(i, r) for i, r in pairs]
            value_batch = [v for i, r in pairs for v in values(i, r)]
            if shaped:
                batch = [tuple(t[i] for i in kept) for t in batch]
                texts = [(v[0], v[1], v[4]) for v in value_batch if v[4] is not None]
                numbers = [(v[0], v[1], v[5]) for v in value_batch if v[4] is None]
            started = time.perf_counter()
            cur = conn.cursor()
            if shaped:
                cur.executemany(shaped_sql, batch)
                cur.executemany(text_sql, texts)
                cur.executemany(number_sql, numbers)
            elif db == "sqlite":
                cur.executemany(sql, batch)
                cur.executemany(value_sql, value_batch)
            else:
                for table, tuples in (("data_rows", batch), ("data_row_metadata", value_batch)):
                    with cur.copy(f"COPY {table} FROM STDIN") as copy:
                        for t in tuples:
                            copy.write_row(t)
            conn.commit()
            spent += time.perf_counter() - started
    finally:
        conn.close()
    return spent


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL server for --db postgresql (fresh databases are made there)",
    )
    parser.add_argument("--chunk-rows", type=int, help="TETHER_IMPORT_CHUNK_ROWS for the server")
    parser.add_argument("--no-baseline", action="store_true", help="skip the raw baseline")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and databases")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tether-bench-import-"))
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        config = {"TETHER_DATA_DIR": str(work / "data")}
        if args.db == "postgresql":
            config["TETHER_DATABASE_URL"] = stack.enter_context(pg_database(args.pg, args.keep))
        if args.chunk_rows:
            config["TETHER_IMPORT_CHUNK_ROWS"] = str(args.chunk_rows)
        with server(work, config) as (proc, url):
            cli(
                config,
                "users",
                "create",
                "bench@example.com",
                "--org",
                "bench",
                "--password-stdin",
                stdin="pw\n",
            )
            key = cli(config, "keys", "create", "bench@example.com").strip()
            with Client(url, api_key=key, timeout=600) as client:
                dataset = client.create_dataset("bench")
                with (
                    PeakRss(proc.pid, tree=True) as server_rss,
                    PeakRss(os.getpid(), tree=False) as client_rss,
                ):
                    cpu_before = cpu_seconds(proc.pid)
                    started = time.perf_counter()
                    job = dataset.create_data_rows(rows(args.rows))
                    uploaded = time.perf_counter() - started
                    spy = profile(proc.pid)
                    job.wait_till_done(poll=0.2)
                    total = time.perf_counter() - started
                    server_cpu = cpu_seconds(proc.pid) - cpu_before
                    end_profile(spy)
        if job.status != "completed" or job.counts["created"] != args.rows:
            sys.exit(f"the import did not complete as expected: {job!r} {job.message}")
        raw = raw_shaped = None
        if not args.no_baseline:
            raw_url = (
                stack.enter_context(pg_database(args.pg, args.keep))
                if args.db != "sqlite"
                else None
            )
            raw = baseline(args.db, raw_url, work, args.rows)
            if args.db == "sqlite":
                raw_shaped = baseline(args.db, None, work, args.rows, shaped=True)

    rate = args.rows / total
    mb = 1024 * 1024
    print(f"tether import: {args.rows:,} rows into {args.db} through the SDK and `tether serve`")
    _line(
        "end to end",
        f"{rate:,.0f} rows/s",
        f"{total:.1f} s: upload {uploaded:.1f} s, job done {total - uploaded:.1f} s later",
        f">= {TARGET_ROWS_S:,} rows/s (SQLite)",
    )
    if raw is not None:
        raw_rate = args.rows / raw
        how = "COPY" if args.db == "postgresql" else "executemany"
        _line(
            "raw, all stored",
            f"{raw_rate:,.0f} rows/s",
            f"{raw:.1f} s: {how}, data_rows + data_row_metadata (3 a row)",
            "",
        )
        _line(
            "ratio", f"{rate / raw_rate:.2f}", "end to end / raw, all stored", f">= {TARGET_RATIO}"
        )
    if raw_shaped is not None:
        shaped_rate = args.rows / raw_shaped
        how = f"{raw_shaped:.1f} s: executemany, tether's statement shapes (fewer binds)"
        _line("raw, fewer binds", f"{shaped_rate:,.0f} rows/s", how, "")
        _line("ratio", f"{rate / shaped_rate:.2f}", "end to end / raw, fewer binds", "")
    _line(
        "server peak RSS",
        f"{server_rss.peak / mb:,.0f} MB",
        "process tree",
        f"< {TARGET_RSS_MB} MB",
    )
    _line("client peak RSS", f"{client_rss.peak / mb:,.0f} MB", "this process", "")
    _line(
        "server CPU",
        f"{server_cpu:,.1f} s",
        f"{server_cpu / args.rows * 1e6:.1f} us a row, reader processes included",
        "",
    )


def _line(label: str, value: str, detail: str, target: str) -> None:
    print(f"  {label:<16} {value:>15}   {detail:<52} {('target ' + target) if target else ''}")


if __name__ == "__main__":
    main()
