"""Deleting a dataset as a job: how long the whole deletion takes, and how long the longest
single transaction holds the database (what other writers wait for), against deleting the
same rows in one transaction (how tether deleted datasets before).

    python bench/delete_dataset.py --rows 300000 [--database-url postgresql://...]

Rows are written with plain SQL (two metadata values each), so the setup is quick; both
deletions start from the same rows. On PostgreSQL give it a database of its own (it migrates
it and leaves its rows' organization behind).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert

from tether import accounts
from tether.catalog import datasets, deletion
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.db.tables import data_row_metadata, data_rows
from tether.db.tables import datasets as datasets_table
from tether.jobs import worker


def _fill(engine: Engine, org_id: int, rows: int) -> int:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        dataset_id = int(datasets.create(conn, org_id, f"bench-{time.time_ns()}")["id"])
        start = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM data_rows").scalar())
        for low in range(0, rows, 10_000):
            ids = range(start + low + 1, start + min(low + 10_000, rows) + 1)
            conn.execute(
                insert(data_rows),
                [
                    {
                        "id": i,
                        "org_id": org_id,
                        "dataset_id": dataset_id,
                        "global_key": f"g{dataset_id}-{i}",
                        "media_type": "IMAGE",
                        "row_data": f'"s3://b/{i}.jpg"',
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(data_row_metadata),
                [
                    {
                        "data_row_id": i,
                        "field_key": key,
                        "org_id": org_id,
                        "dataset_id": dataset_id,
                        "value_text": f"t{i % 7}",
                    }
                    for i in ids
                    for key in (1, 2)
                ],
            )
    return dataset_id


def _one_transaction(engine: Engine, dataset_id: int) -> float:
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(delete(data_row_metadata).where(data_row_metadata.c.dataset_id == dataset_id))
        conn.execute(delete(data_rows).where(data_rows.c.dataset_id == dataset_id))
        conn.execute(delete(datasets_table).where(datasets_table.c.id == dataset_id))
    return time.perf_counter() - began


def _as_job(engine: Engine, org_id: int, dataset_id: int, chunk_rows: int) -> tuple[float, float]:
    queued: list[str] = []
    began = time.perf_counter()
    deletion.submit(engine, queued.append, org_id, dataset_id)
    marked = time.perf_counter() - began
    marks: list[float] = []
    real = worker.JobRun.record

    def timed(self: worker.JobRun, *args: Any) -> bool:
        marks.append(time.perf_counter())
        return real(self, *args)

    worker.JobRun.record = timed  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        worker.execute(
            engine,
            queued[0],
            {deletion.KIND: deletion.delete_runner(chunk_rows)},
            "bench",
            timedelta(minutes=5),
            threading.Event(),
        )
    finally:
        worker.JobRun.record = real  # type: ignore[method-assign]
    total = time.perf_counter() - started
    steps = [b - a for a, b in zip([started, *marks], marks, strict=False)]
    print(f"  mark + queue (the request): {marked * 1000:.0f} ms")
    return total, max(steps) if steps else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        email = f"bench-{time.time_ns()}@example.com"
        accounts.create_user(conn, email, email, None)
        org_id = accounts.authenticate(conn, accounts.create_api_key(conn, email)).org_id
    print(f"{engine.dialect.name}, {args.rows} rows, 2 metadata values each")
    one = _one_transaction(engine, _fill(engine, org_id, args.rows))
    print(f"one transaction: {one:.2f} s, all of it holding the database")
    total, longest = _as_job(engine, org_id, _fill(engine, org_id, args.rows), args.chunk_rows)
    print(
        f"job ({args.chunk_rows} rows a chunk): {total:.2f} s in all, longest transaction "
        f"{longest * 1000:.0f} ms"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
