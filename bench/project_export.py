"""Project export benchmark (issue 16, section 3).

    python bench/project_export.py                       # 100,000 tasks on SQLite
    python bench/project_export.py --tasks 300000 --db postgresql
    python bench/project_export.py --coco                # COCO too (the converter)

Starts a real ``tether serve`` (fresh data dir; for PostgreSQL a fresh database), imports
N image rows through the SDK, makes two projects of them through ``tether.projects.labels``
(the one write path): a small one of N/10 tasks and one of N, each task with an annotation
of two boxes and every other task with a prediction. It exports each through the API
(``GET /projects/{id}/export``, read with httpx as it streams) and prints:

- tasks/s and MB/s of the JSON and the NDJSON exports of N tasks;
- the server's peak RSS during the export of N/10 tasks and of N (flat: about the same);
- the server's CPU seconds per export, and the ratios by CPU time too (they hold on a busy
  machine);
- the tasks/s of a raw read of the same rows from the same database in the same run (the raw
  driver, the export's three SELECTs over the whole project, each row made a JSON object with
  orjson, the annotations and predictions matched to their tasks): the floor of any export,
  and the ratio of the two;
- with ``--coco``: the tasks/s of the COCO export (Label Studio's converter builds it in
  memory, so its RSS grows with the project).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import PeakRss, cli, cpu_seconds, pg_database, psycopg_url, server
from sqlalchemy import Engine, select

from tether.db.engine import make_engine
from tether.db.tables import data_rows, projects
from tether.projects import labels
from tether.sdk import Client

MB = 1024 * 1024
BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
</View>"""
CHUNK = 5000


def region(i: int, label: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex[:10],
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "manual",
        "original_width": 1920,
        "original_height": 1080,
        "image_rotation": 0,
        "value": {
            "x": i % 50,
            "y": 10.5,
            "width": 20,
            "height": 30.25,
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


def fill(engine: Engine, project_id: int, ids: list[int]) -> float:
    """Make ``ids`` tasks with an annotation each (two boxes) and a prediction on every
    other one; the seconds it took."""
    started = time.perf_counter()
    with engine.begin() as conn:
        org_id = conn.execute(
            select(projects.c.org_id).where(projects.c.id == project_id)
        ).scalar_one()
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        base = {"org_id": org_id, "project_id": project_id}
        with engine.begin() as conn:
            labels.add_tasks(conn, org_id, project_id, part)
            labels.insert_annotations(
                conn,
                [
                    {
                        **base,
                        "data_row_id": i,
                        "result": [region(i, "Cat"), region(i + 1, "Dog")],
                        "lead_time": 3.5,
                        "completed_by": 1,
                        "updated_by": 1,
                    }
                    for i in part
                ],
            )
            labels.insert_predictions(
                conn,
                [
                    {**base, "data_row_id": i, "result": [region(i, "Cat")], "score": 0.5}
                    for i in part[::2]
                ],
            )
    return time.perf_counter() - started


def export_http(url: str, key: str, project_id: int, fmt: str) -> tuple[int, int, float, int]:
    """Lines, bytes and seconds of one export read as it streams; the task count header."""
    lines = size = 0
    started = time.perf_counter()
    with (
        httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=3600) as client,
        client.stream(
            "GET", f"{url}/api/v1/projects/{project_id}/export", params={"format": fmt}
        ) as response,
    ):
        response.raise_for_status()
        promised = int(response.headers["x-tether-export-tasks"])
        for chunk in response.iter_raw(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
    return lines, size, time.perf_counter() - started, promised


RAW = (
    "SELECT t.data_row_id, t.status, t.total_annotations, t.cancelled_annotations, "
    "t.total_predictions, t.created_at, t.updated_at, d.row_data FROM tasks t "
    "JOIN data_rows d ON d.id = t.data_row_id WHERE t.project_id = {p} ORDER BY t.data_row_id",
    "SELECT id, data_row_id, result, lead_time, was_cancelled, ground_truth, completed_by, "
    "updated_by, parent_prediction, parent_annotation, created_at, updated_at, project_id "
    "FROM annotations WHERE project_id = {p} ORDER BY data_row_id, id",
    "SELECT id, data_row_id, result, model_version, score, created_at, updated_at, project_id "
    "FROM predictions WHERE project_id = {p} ORDER BY data_row_id, id",
)


def raw_read(db: str, url: str | None, data_dir: Path, project_id: int) -> tuple[int, float, float]:
    """Tasks and seconds of the raw read: the three SELECTs on the raw driver, read in step
    (each ordered by data row id), every row dumped by orjson as an object of its columns
    (the JSON columns as the text they hold), a task's line holding its rows'. Also the CPU
    seconds of this process (PostgreSQL's own not counted)."""
    if db == "sqlite":
        conns: list[Any] = [sqlite3.connect(data_dir / "tether.db") for _ in RAW]
        cursors = [c.cursor() for c in conns]
    else:
        import psycopg

        conns = [psycopg.connect(str(url)) for _ in RAW]
        cursors = [c.cursor(name=f"bench{i}") for i, c in enumerate(conns)]
    dumps = orjson.dumps
    count = 0
    started, cpu = time.perf_counter(), time.process_time()
    try:
        for cursor, sql in zip(cursors, RAW, strict=True):
            cursor.execute(sql.format(p=int(project_id)))
        names = [[d[0] for d in c.description] for c in cursors]
        tasks, made, predicted = cursors
        pending = [_rows(made, names[1]), _rows(predicted, names[2])]
        heads: list[Any] = [next(it, None) for it in pending]
        while batch := tasks.fetchmany(CHUNK):
            out = []
            for row in batch:
                task = dict(zip(names[0], row, strict=True))
                for k in (0, 1):
                    found = []
                    while heads[k] is not None and heads[k]["data_row_id"] == row[0]:
                        found.append(heads[k])
                        heads[k] = next(pending[k], None)
                    task["annotations" if k == 0 else "predictions"] = found
                out.append(dumps(task, default=str) + b"\n")
            count += len(out)
    finally:
        for c in conns:
            c.close()
    return count, time.perf_counter() - started, time.process_time() - cpu


def _rows(cursor: Any, names: list[str]) -> Any:
    while batch := cursor.fetchmany(CHUNK):
        for row in batch:
            yield dict(zip(names, row, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("TETHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--coco", action="store_true", help="also time the COCO export")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and database")
    args = parser.parse_args()
    n, small = args.tasks, max(1, args.tasks // 10)

    work = Path(tempfile.mkdtemp(prefix="tether-bench-project-export-"))
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        config = {"TETHER_DATA_DIR": str(work / "data")}
        pg_url = None
        if args.db == "postgresql":
            pg_url = config["TETHER_DATABASE_URL"] = stack.enter_context(
                pg_database(args.pg, args.keep)
            )
        db_url = psycopg_url(pg_url) if pg_url else f"sqlite:///{work / 'data' / 'tether.db'}"
        with server(work, config) as (proc, url):
            cli(config, "users", "create", "b@example.com", "--org", "b", "--password-stdin",
                stdin="pw\n")  # fmt: skip
            key = cli(config, "keys", "create", "b@example.com").strip()
            engine = make_engine(db_url)
            stack.callback(engine.dispose)
            with Client(url, api_key=key, timeout=600) as client:
                dataset = client.create_dataset("bench")
                rows = ({"row_data": f"s3://bench/img/{i:08d}.jpg"} for i in range(n))
                job = dataset.create_data_rows(rows)
                job.wait_till_done(poll=0.5)
                if job.counts["created"] != n:
                    sys.exit(f"the import did not complete: {job!r}")
                with engine.connect() as conn:
                    ids = list(
                        conn.execute(
                            select(data_rows.c.id)
                            .where(data_rows.c.dataset_id == dataset.id)
                            .order_by(data_rows.c.id)
                        ).scalars()
                    )
                little = client.create_project("small", BOXES)
                big = client.create_project("big", BOXES)
                fill(engine, little.id, ids[:small])
                filled = fill(engine, big.id, ids)
            figures: dict[str, Any] = {}
            with PeakRss(proc.pid, tree=True) as rss_small:
                export_http(url, key, little.id, "json")
            for fmt in ("json", "ndjson"):
                cpu = cpu_seconds(proc.pid)
                with PeakRss(proc.pid, tree=True) as rss:
                    figures[fmt] = (*export_http(url, key, big.id, fmt), rss)
                figures[fmt] += (cpu_seconds(proc.pid) - cpu,)
            if args.coco:
                with PeakRss(proc.pid, tree=True) as rss_coco:
                    started = time.perf_counter()
                    _lines, coco_size, _s, coco_tasks = export_http(url, key, big.id, "coco")
                    coco_spent = time.perf_counter() - started
        raw_tasks, raw_spent, raw_cpu = raw_read(args.db, pg_url, work / "data", big.id)

    lines, size, spent, promised, rss, _cpu = figures["ndjson"]
    if not (lines == promised == raw_tasks == n):
        sys.exit(f"task counts differ: {lines=} {promised=} {raw_tasks=} tasks={n}")
    raw_rate, raw_cpu_rate = raw_tasks / raw_spent, raw_tasks / raw_cpu
    print(f"tether project export: {n:,} tasks (2 boxes each, a prediction every other) "
          f"from {args.db} through `tether serve`")  # fmt: skip
    print(f"  (tasks, annotations, predictions written in {filled:.0f} s: {n / filled:,.0f}/s)")
    for fmt in ("json", "ndjson"):
        lines, size, spent, promised, rss, cpu = figures[fmt]
        how = f"{spent:.1f} s, {size / MB / spent:,.0f} MB/s, {size / n:,.0f} bytes a task"
        _line(f"export {fmt}", f"{n / spent:,.0f} tasks/s", how)
        _line("  ratio", f"{n / spent / raw_rate:.2f}", "export / raw read + orjson")
        _line("  server CPU", f"{cpu:.1f} s", f"{n / cpu:,.0f} tasks a CPU second")
        _line(
            "  ratio, CPU", f"{n / cpu / raw_cpu_rate:.2f}", "the same by CPU time (a busy machine)"
        )
        _line("  server peak RSS", f"{rss.peak / MB:,.0f} MB", f"exporting {n:,} tasks")
    how = f"{raw_spent:.1f} s: the same 3 SELECTs, raw driver, a JSON object a row"
    _line("raw read + orjson", f"{raw_rate:,.0f} tasks/s", how)
    where = "SQLite in-process" if args.db == "sqlite" else "PostgreSQL's own CPU not counted"
    _line(
        "raw read CPU",
        f"{raw_cpu:.1f} s",
        f"{raw_tasks / raw_cpu:,.0f} tasks a CPU second ({where})",
    )
    _line("server peak RSS", f"{rss_small.peak / MB:,.0f} MB", f"exporting {small:,} tasks (json)")
    if args.coco:
        how = f"{coco_spent:.1f} s, {coco_size / MB:,.1f} MB of COCO, {coco_tasks:,} tasks"
        _line("export coco", f"{coco_tasks / coco_spent:,.0f} tasks/s", how)
        _line("  server peak RSS", f"{rss_coco.peak / MB:,.0f} MB", "the converter holds COCO")


def _line(label: str, value: str, detail: str) -> None:
    print(f"  {label:<20} {value:>15}   {detail}")


if __name__ == "__main__":
    main()
