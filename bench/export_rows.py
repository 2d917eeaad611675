"""Export benchmark (issue 13, section 7).

    python bench/export_rows.py                      # 1,000,000 rows from SQLite
    python bench/export_rows.py --rows 300000 --db postgresql

Starts a real ``tether serve`` (fresh data dir; for PostgreSQL a fresh database), imports N
rows with every field (global key, external id, row data URL, media attributes, 3 metadata
fields, 1 attachment) through the SDK, then exports the dataset through the API as NDJSON
(``GET /datasets/{id}/export``, read with httpx as it streams) and prints:

- rows/s and MB/s of the export, from the request to the last byte;
- the server's RSS before the export and its peak during it (it should stay flat);
- the rows/s of the same rows read straight from the database in the same run (the raw
  driver, the same SELECT, each row turned into a JSON object with orjson): the floor of any
  export, and the ratio of the two (target >= 0.5, and >= 100,000 rows/s on SQLite);
- with ``--sdk``, the rows/s of ``Dataset.export()`` too (it parses every line).

``BENCH_PROFILE=out.svg`` records the server with py-spy while it exports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from _common import PeakRss, cli, cpu_seconds, end_profile, pg_database, profile, server
from import_rows import rows

from tether.sdk import Client

TARGET_ROWS_S, TARGET_RATIO = 100_000, 0.5
COLUMNS = (
    "id, dataset_id, global_key, external_id, media_type, row_data, media_attributes, "
    "metadata, attachments, extra, created_by, created_at, updated_at"
)


def rich_rows(n: int) -> Iterator[dict[str, Any]]:
    for i, row in enumerate(rows(n)):
        row["media_attributes"] = {"width": 640 + i % 7, "height": 480, "mimeType": "image/jpeg"}
        yield row


def export_http(url: str, key: str, dataset_id: int) -> tuple[int, int, float, int]:
    """Lines, bytes, seconds of one export read as it streams; the row count header."""
    lines = size = 0
    started = time.perf_counter()
    with (
        httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=600) as client,
        client.stream("GET", f"{url}/api/v1/datasets/{dataset_id}/export") as response,
    ):
        response.raise_for_status()
        promised = int(response.headers["x-tether-export-rows"])
        for chunk in response.iter_raw(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
    return lines, size, time.perf_counter() - started, promised


def raw_scan(db: str, url: str | None, data_dir: Path, dataset_id: int) -> tuple[int, float, float]:
    """Rows, seconds and CPU seconds (of this process) of the export's SELECT on the raw
    driver, each row dumped with orjson as an object of its columns (the JSON columns as the
    text they hold)."""
    sql = f"SELECT {COLUMNS} FROM data_rows WHERE dataset_id = %s ORDER BY id"
    names = [c.strip() for c in COLUMNS.split(",")]
    if db == "sqlite":
        conn: Any = sqlite3.connect(data_dir / "tether.db")
        cursor = conn.cursor()
        sql = sql.replace("%s", "?")
    else:
        import psycopg

        conn = psycopg.connect(str(url))
        cursor = conn.cursor(name="bench")
    count = 0
    dumps = orjson.dumps
    started, cpu = time.perf_counter(), time.process_time()
    try:
        cursor.execute(sql, (dataset_id,))
        while batch := cursor.fetchmany(5000):
            out = b"".join([dumps(dict(zip(names, row, strict=True))) + b"\n" for row in batch])
            count += out.count(b"\n")
    finally:
        cursor.close()
        conn.close()
    return count, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL server for --db postgresql (a fresh database is made there)",
    )
    parser.add_argument("--sdk", action="store_true", help="also time Dataset.export()")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and database")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tether-bench-export-"))
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        config = {"TETHER_DATA_DIR": str(work / "data")}
        pg_url = None
        if args.db == "postgresql":
            pg_url = config["TETHER_DATABASE_URL"] = stack.enter_context(
                pg_database(args.pg, args.keep)
            )
        with server(work, config) as (proc, url):
            user = ("users", "create", "b@example.com", "--org", "b", "--password-stdin")
            cli(config, *user, stdin="pw\n")
            key = cli(config, "keys", "create", "b@example.com").strip()
            with Client(url, api_key=key, timeout=600) as client:
                dataset = client.create_dataset("bench")
                started = time.perf_counter()
                job = dataset.create_data_rows(rich_rows(args.rows))
                job.wait_till_done(poll=0.5)
                loaded = time.perf_counter() - started
                if job.counts["created"] != args.rows:
                    sys.exit(f"the import did not complete: {job!r} {job.message}")
                rss_before = psutil.Process(proc.pid).memory_info().rss
                spy = profile(proc.pid, rate=100)
                cpu_before = cpu_seconds(proc.pid)
                with PeakRss(proc.pid, tree=True) as server_rss:
                    lines, size, spent, promised = export_http(url, key, dataset.id)
                server_cpu = cpu_seconds(proc.pid) - cpu_before
                end_profile(spy)
                sdk_spent = None
                if args.sdk:
                    started = time.perf_counter()
                    sdk_rows = sum(1 for _row in dataset.export())
                    sdk_spent = time.perf_counter() - started
                    assert sdk_rows == args.rows, sdk_rows
            raw_rows, raw_spent, raw_cpu = raw_scan(args.db, pg_url, work / "data", dataset.id)
        if not (lines == promised == raw_rows == args.rows):
            sys.exit(f"row counts differ: {lines=} {promised=} {raw_rows=} rows={args.rows}")

    rate, raw_rate = args.rows / spent, raw_rows / raw_spent
    mb = 1024 * 1024
    print(f"tether export: {args.rows:,} rows from {args.db} through `tether serve` (NDJSON)")
    print(f"  (loaded through the SDK in {loaded:.0f} s: {args.rows / loaded:,.0f} rows/s)")
    speed = f"{spent:.1f} s, {size / mb / spent:,.0f} MB/s, {size / args.rows:.0f} bytes a row"
    _line("export", f"{rate:,.0f} rows/s", speed, f">= {TARGET_ROWS_S:,} rows/s (SQLite)")
    how = f"{raw_spent:.1f} s: same SELECT, raw driver, a JSON object a row"
    _line("raw scan + orjson", f"{raw_rate:,.0f} rows/s", how, "")
    _line("ratio", f"{rate / raw_rate:.2f}", "export / raw scan + orjson", f">= {TARGET_RATIO}")
    cpu_rate, raw_cpu_rate = args.rows / server_cpu, raw_rows / raw_cpu
    where = "SQLite in-process" if args.db == "sqlite" else "PostgreSQL's own CPU not counted"
    _line("server CPU", f"{server_cpu:.1f} s", f"{cpu_rate:,.0f} rows a CPU second", "")
    _line(
        "raw scan CPU", f"{raw_cpu:.1f} s", f"{raw_cpu_rate:,.0f} rows a CPU second ({where})", ""
    )
    _line(
        "ratio, CPU", f"{cpu_rate / raw_cpu_rate:.2f}", "the same, by CPU time (a busy machine)", ""
    )
    if sdk_spent is not None:
        _line("SDK export()", f"{args.rows / sdk_spent:,.0f} rows/s", "parses every line", "")
    _line("server RSS", f"{rss_before / mb:,.0f} MB", "before the export", "")
    _line("server peak RSS", f"{server_rss.peak / mb:,.0f} MB", "during it (process tree)", "flat")


def _line(label: str, value: str, detail: str, target: str) -> None:
    print(f"  {label:<18} {value:>15}   {detail:<52} {('target ' + target) if target else ''}")


if __name__ == "__main__":
    main()
