"""Task pages beside data row pages (issue 16).

    python bench/tasks_pages.py --tasks 100000 --db sqlite
    python bench/tasks_pages.py --tasks 100000 --db postgresql

Loads the catalog of ``query_rows.py`` straight into the database (two organizations; the
first one's rows, N of them, each with split, tag, captureDateTime and score), makes every
row of the first organization a task of one project through an ``add_tasks`` job (run here,
timed), labels a tenth of them, then starts `tether serve` and times, through HTTP, pages of
100 tasks (no filter, a status, metadata filters, both) beside the same pages of data rows
in the same run: p50/p95 of each and the ratio of the task page's p50 to the row page's
(1.0: as fast; the target is at most 1.5). A status has no data row twin: its line stands
beside the unfiltered row page, the floor of any page of 100 rows.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import free_port
from query_rows import _database, _load, _wait
from sqlalchemy import Engine, select, text

from tether import accounts
from tether.db.engine import make_engine, refresh_statistics
from tether.db.migrate import upgrade
from tether.db.tables import data_rows
from tether.jobs import worker
from tether.projects import labels, projects, tasks
from tether.sdk import Client

BOXES = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="Cat"/></RectangleLabels></View>"""
TARGET_RATIO = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the project")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server (a fresh database is made there)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    url, drop = _database(args.db, args.pg, work)
    try:
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        setup = _load(engine, args.tasks * 2)  # half of the rows are the other org's
        print(f"loaded {setup['rows']:,} rows in {time.perf_counter() - started:.0f} s")
        project = _project(engine, setup["orgs"][0])
        _measure(engine, url, work, setup, project, args.runs)
    finally:
        drop()
        shutil.rmtree(work, ignore_errors=True)


def _project(engine: Engine, org: dict[str, Any]) -> dict[str, Any]:
    """A project of every row of the organization (an add_tasks job, timed), a tenth of
    them labeled."""
    org_id = org["org_id"]
    with engine.begin() as conn:
        made = projects.create(conn, org_id, f"bench-{uuid.uuid4().hex[:6]}", BOXES)
        jobs = [
            tasks.start(conn, org_id, made["id"], dataset=dataset_id)
            for dataset_id in org["datasets"]
        ]
    started = time.perf_counter()
    runners = {tasks.KIND: tasks.add_tasks_runner(2000)}
    for job in jobs:
        worker.execute(engine, job["id"], runners, "bench", timedelta(minutes=5))
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        count = projects.get(conn, org_id, made["id"])["task_count"]
        ids = list(
            conn.execute(
                select(data_rows.c.id).where(data_rows.c.org_id == org_id).order_by(data_rows.c.id)
            ).scalars()
        )
    print(
        f"add_tasks: {count:,} rows joined the project in {elapsed:.1f} s "
        f"({count / elapsed:,.0f} rows/s, chunks of 2,000)"
    )
    labeled = random.Random(3).sample(ids, len(ids) // 10)
    base = {"org_id": org_id, "project_id": made["id"], "result": []}
    with engine.begin() as conn:
        for start in range(0, len(labeled), 5000):
            part = labeled[start : start + 5000]
            labels.insert_annotations(conn, [{**base, "data_row_id": i} for i in part])
    refresh_statistics(engine)
    if engine.dialect.name == "postgresql":  # settled, as autovacuum leaves it after a while
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE tasks"))
            conn.execute(text("VACUUM ANALYZE annotations"))
    return {**made, "ids": ids}


def _measure(
    engine: Engine,
    url: str,
    work: Path,
    setup: dict[str, Any],
    project: dict[str, Any],
    runs: int,
) -> None:
    org = setup["orgs"][0]
    port = free_port()
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
        deep = project["ids"][int(len(project["ids"]) * 0.8)]
        tasks_path = f"/projects/{project['id']}/tasks"
        cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
            ("first page", {}, {}),
            ("deep page (cursor)", {"after": deep}, {"after": deep}),
            ("status = labeled (a tenth)", {"status": "labeled"}, {}),
            ("status = unlabeled", {"status": "unlabeled"}, {}),
            ("split = valid (a third)", {"metadata": ["split:eq:valid"]}, None),
            ("tag = tag-0042 (1 in 1,000)", {"metadata": ["tag:eq:tag-0042"]}, None),
            ("score 10-12", {"metadata": ["score:gte:10", "score:lt:12"]}, None),
            ("VIDEO", {"media_type": "VIDEO"}, None),
            (
                "split = valid, labeled",
                {"metadata": ["split:eq:valid"], "status": "labeled"},
                {"metadata": ["split:eq:valid"]},
            ),
            ("resolve=true, first page", {"resolve": "true"}, {"resolve": "true"}),
        ]
        print(
            f"\n{'page of 100':32} {'tasks p50':>9} {'p95':>7} {'rows p50':>9} {'p95':>7}"
            f" {'ratio':>6}  target"
        )
        ratios = []
        for label, task_params, row_params in cases:
            rows_query = {**task_params} if row_params is None else row_params
            (t50, t95), (r50, r95) = _paired(
                client,
                (tasks_path, {**task_params, "limit": 100}),
                ("/data-rows", {**rows_query, "limit": 100}),
                runs,
            )
            ratio = t50 / r50
            ratios.append(ratio)
            verdict = "ok" if ratio <= TARGET_RATIO else "SLOW"
            print(f"{label:32} {t50:9.1f} {t95:7.1f} {r50:9.1f} {r95:7.1f} {ratio:6.2f}  {verdict}")
        print(f"\nworst ratio {max(ratios):.2f}, median {statistics.median(ratios):.2f}")
        next_path = f"/projects/{project['id']}/next-task"
        (n50, n95), _ = _paired(client, (next_path, {}), (next_path, {}), runs)
        print(f"next-task, the caller's own lease renewed: p50 {n50:.1f} ms, p95 {n95:.1f} ms")
        claims = []
        for key in _annotators(engine, org["org_id"], runs):
            with Client(f"http://127.0.0.1:{port}", key) as annotator:
                started = time.perf_counter()
                annotator._json("GET", next_path)
                claims.append((time.perf_counter() - started) * 1000)
        c50, c95 = statistics.median(claims), statistics.quantiles(claims, n=20)[18]
        print(
            f"next-task, a new annotator each time (past {runs} held tasks): "
            f"p50 {c50:.1f} ms, p95 {c95:.1f} ms"
        )
    finally:
        server.terminate()
        server.wait(10)


def _annotators(engine: Engine, org_id: int, n: int) -> list[str]:
    """API keys of ``n`` new members of the organization."""
    keys = []
    with engine.begin() as conn:
        org = accounts.get_org(conn, org_id)["name"]
        for i in range(n):
            email = f"annotator-{i}-{uuid.uuid4().hex[:6]}@example.com"
            accounts.create_user(conn, email, org, None)
            keys.append(accounts.create_api_key(conn, email))
    return keys


def _paired(
    client: Client, first: tuple[str, dict[str, Any]], second: tuple[str, dict[str, Any]], runs: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """p50 and p95 (ms) of two calls made in turn, so both see the same load of the machine."""
    calls: list[Callable[[], Any]] = [
        lambda path=path, params=params: client._json("GET", path, params=params)
        for path, params in (first, second)
    ]
    times: list[list[float]] = [[], []]
    for call in calls:
        call()  # warm up
    for _ in range(runs):
        for call, seen in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            seen.append((time.perf_counter() - started) * 1000)
    a, b = ((statistics.median(t), statistics.quantiles(t, n=20)[18]) for t in times)
    return a, b


if __name__ == "__main__":
    main()
