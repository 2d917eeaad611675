"""Predictions import benchmark (issue 16, section 2).

    python bench/predictions.py                       # 100,000 predictions into SQLite
    python bench/predictions.py --items 50000 --db postgresql

Starts a real ``tether serve`` (fresh data dir; for PostgreSQL a fresh database), makes a
user and an API key with the ``tether`` command, imports N data rows with global keys, makes
a project of them (the tasks are added through ``tether.projects.labels.add_tasks`` on the
server's database, as the tasks service does), then streams N predictions (one box each,
half matched by ``data_row_id``, half by ``global_key``) through the SDK's
``project.upload_predictions(generator)`` and waits for the job. It prints:

- predictions/s end to end (from the first byte sent to the job's completion), and of the
  job alone (its ``started_at`` to ``finished_at``),
- the peak RSS of the server's process tree during the run,
- the rows/s of the raw way to store the same prediction rows (SQLAlchemy Core
  ``executemany`` into fresh tables of the same shape, in the same kind of database, in the
  same run, committed every 10,000 rows), and the ratio of the two. The job does more than
  the raw insert: it parses and checks every region against the label config, looks up the
  global keys and the tasks, and recounts every task it touched.
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
from pathlib import Path
from typing import Any

import orjson
from _common import (
    PeakRss,
    line,
    pg_database,
    psycopg_url,
    raw_floor_engine,
    server,
    user_and_key,
)
from sqlalchemy import create_engine, insert, text

from tether.config import Settings
from tether.sdk import Client

BASELINE_BATCH = 10_000


def region(i: int) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 1920,
        "original_height": 1080,
        "value": {
            "x": i % 90,
            "y": 10,
            "width": 5,
            "height": 5,
            "rotation": 0,
            "rectanglelabels": ["Airplane"],
        },
        "score": 0.5,
    }


def items(ids: list[int], keys: list[str]) -> Iterator[dict[str, Any]]:
    for i, (row_id, key) in enumerate(zip(ids, keys, strict=True)):
        named = {"data_row_id": row_id} if i % 2 else {"global_key": key}
        yield {**named, "result": [region(i)], "model_version": "bench-v1", "score": 0.5}


def baseline(db: str, url: str | None, work: Path, n: int) -> float:
    """Seconds SQLAlchemy Core's ``executemany`` takes to store n prediction rows (the
    columns the job writes) into fresh tables of tether's shape, tasks in place."""
    from tether.db import tables

    base = work / "baseline"
    base.mkdir()
    engine = raw_floor_engine(
        f"sqlite:///{base / 'raw.db'}" if db == "sqlite" else psycopg_url(str(url)),
        [
            tables.organizations,
            tables.datasets,
            tables.data_rows,
            tables.projects,
            tables.tasks,
            tables.predictions,
        ],
    )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.projects).values(
                id=1,
                org_id=1,
                name="p",
                description="",
                label_config="",
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(tables.data_rows),
            [
                {
                    "id": i + 1,
                    "org_id": 1,
                    "dataset_id": 1,
                    "media_type": "IMAGE",
                    "row_data": '"x"',
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(tables.tasks),
            [
                {
                    "project_id": 1,
                    "data_row_id": i + 1,
                    "org_id": 1,
                    "status": "unlabeled",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
    rows = [
        {
            "org_id": 1,
            "project_id": 1,
            "data_row_id": i + 1,
            "result": orjson.dumps([region(i)]).decode(),
            "model_version": "bench-v1",
            "score": 0.5,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n)
    ]
    started = time.perf_counter()
    for start in range(0, n, BASELINE_BATCH):
        with engine.begin() as conn:
            conn.execute(insert(tables.predictions), rows[start : start + BASELINE_BATCH])
    took = time.perf_counter() - started
    engine.dispose()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL server for --db postgresql (fresh databases are made there)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir and databases")
    args = parser.parse_args()
    n = args.items

    work = Path(tempfile.mkdtemp(prefix="tether-bench-predictions-"))
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        config = {"TETHER_DATA_DIR": str(work / "data")}
        if args.db == "postgresql":
            config["TETHER_DATABASE_URL"] = stack.enter_context(pg_database(args.pg, args.keep))
        with server(work, config) as (proc, url):
            key = user_and_key(config)
            with Client(url, api_key=key, timeout=600) as client:
                dataset = client.create_dataset("bench")
                rows = (
                    {"row_data": f"s3://bench/{i:08d}.jpg", "global_key": f"bench-{i:08d}"}
                    for i in range(n)
                )
                imported = dataset.create_data_rows(rows).wait_till_done(poll=0.2)
                if imported.status != "completed":
                    sys.exit(f"the row import failed: {imported!r}")
                found = [(r.id, r.global_key) for r in dataset.data_rows(page_size=1000)]
                ids, keys = [f[0] for f in found], [str(f[1]) for f in found]
                project = client.create_project("bench", template="image-boxes")
                add_tasks(config, project.id, ids)
                with PeakRss(proc.pid, tree=True) as server_rss:
                    started = time.perf_counter()
                    job = project.upload_predictions(items(ids, keys), timeout=3600)
                    took = time.perf_counter() - started
        if job.status != "completed" or job.counts["created"] != n:
            sys.exit(f"the predictions import did not complete as expected: {job!r}")
        raw_url = None
        if args.db == "postgresql":
            raw_url = stack.enter_context(pg_database(args.pg, args.keep))
        raw = baseline(args.db, raw_url, work, n)
    rate, raw_rate = n / took, n / raw
    ran = (
        datetime.fromisoformat(str(job.finished_at)) - datetime.fromisoformat(str(job.started_at))
    ).total_seconds()
    print(f"predictions import, {n:,} predictions, {args.db}")
    line("end to end", f"{rate:,.0f} /s", "first byte sent to job completed (SDK, NDJSON)")
    line("job run", f"{n / ran:,.0f} /s", "the job alone: started to finished")
    line("raw executemany", f"{raw_rate:,.0f} rows/s", "the same rows, SQLAlchemy Core")
    line("ratio", f"{rate / raw_rate:.2f}", "end to end / raw executemany")
    line("server peak RSS", f"{server_rss.peak / (1 << 20):,.0f} MB", "tether serve and children")


def add_tasks(config: dict[str, str], project_id: int, ids: list[int]) -> None:
    """Make the rows tasks of the project, on the server's own database."""
    from tether.projects import labels

    settings = Settings(
        data_dir=Path(config["TETHER_DATA_DIR"]),
        database_url=config.get("TETHER_DATABASE_URL"),
    )
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        org_id = conn.execute(
            text("SELECT org_id FROM projects WHERE id = :p"), {"p": project_id}
        ).scalar_one()
        labels.add_tasks(conn, int(org_id), project_id, ids)
    engine.dispose()


if __name__ == "__main__":
    main()
