"""Export benchmark (issue 16, section 5): a project's annotations to a target storage.

    python bench/export_annotations.py                       # 100,000 to local files and S3
    python bench/export_annotations.py --annotations 20000 --backend s3
    python bench/export_annotations.py --db postgresql

Makes a project of N annotations (one per task, on N data rows; the write path of
``projects.labels``) in a fresh database, and a target storage of each backend (a folder
under a document root; a bucket of a moto server), stored as the storage API stores it.
Then, in this process, for each backend:

1. raw writes: the N objects an export writes (the same bodies, made beforehand) put with
   the backend opened from the storage's record (``open_backend``: the same client an
   export uses) by a pool of the export's ``WRITERS`` threads, under another prefix (S3)
   or in a sibling folder (local: so both write into a folder that starts empty);
2. the export (a job of kind ``export`` run here by ``run_export``, claim and lease
   included) -> objects/s, and its ratio to the raw writes' rate;
3. 1% of the annotations changed (scattered over the whole project), their objects written
   raw the same way, then the re-export -> seconds, against the raw writes of that 1%.

Targets: export >= 0.8 x the raw write rate; re-export after 1% changed <= 1.2 x the raw
writes of the 1% (it writes those, not everything).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import PG_DEFAULT, line, moto_bucket, moto_server, pg_database, psycopg_url
from sqlalchemy import Engine, insert, select

from tether import accounts
from tether.accounts.orgs import get_or_create_org
from tether.catalog import datasets as dataset_service
from tether.catalog.store import reserve_ids
from tether.config import Settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import data_rows
from tether.projects import labels, projects, target_export
from tether.projects.targets import start_export
from tether.storages.base import Storage
from tether.sync.connections import StorageRecord, get_record, insert_storage, open_backend

TARGET_RATIO, TARGET_CHANGE = 0.8, 1.2
CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="Cat"/></RectangleLabels></View>"""
REGION = {
    "id": "r1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
    "origin": "manual", "original_width": 2242, "original_height": 2802, "image_rotation": 0,
    "value": {"x": 20, "y": 20, "width": 30, "height": 40, "rotation": 0,
              "rectanglelabels": ["Cat"]},
}  # fmt: skip
CHUNK = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=int, default=100_000)
    parser.add_argument("--backend", choices=("local", "s3", "all"), default="all")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--dir", default=None, help="where the database and local files go (default: TMPDIR)"
    )
    args = parser.parse_args()
    n = args.annotations
    with ExitStack() as stack:
        work = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="tether-bench-", dir=args.dir))
        )
        url = None
        if args.db == "postgresql":
            url = psycopg_url(stack.enter_context(pg_database(PG_DEFAULT)))
        settings = Settings(
            data_dir=work / "data",
            database_url=url,
            queue_url="immediate",
            secret_key=None,
            local_files_serving_enabled=True,
            local_files_document_root=work / "documents",
            outbound_allowlist="127.0.0.1",
        )
        (work / "documents").mkdir()
        engine = make_engine(settings.sqlalchemy_url)
        stack.callback(engine.dispose)
        upgrade(engine)
        began = time.perf_counter()
        org_id, project_id = _project(engine, n)
        print(f"export benchmark: {n:,} annotations ({args.db}; made in "
              f"{time.perf_counter() - began:.1f} s)")  # fmt: skip
        backends = ("local", "s3") if args.backend == "all" else (args.backend,)
        for backend in backends:
            fields = _fields(backend, work, stack)
            _run(engine, settings, org_id, project_id, backend, fields, n)


def _project(engine: Engine, n: int) -> tuple[int, int]:
    """A project of ``n`` tasks with one annotation each (rows inserted directly)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        org_id = get_or_create_org(conn, "bench")
        user_id = accounts.create_user(conn, "bench@example.com", "bench", None)
        dataset_id = int(dataset_service.create(conn, org_id, "bench")["id"])
        project_id = int(projects.create(conn, org_id, "bench", CONFIG)["id"])
        first = reserve_ids(conn, n)
    for start in range(0, n, CHUNK):
        ids = list(range(first + start, first + min(n, start + CHUNK)))
        with engine.begin() as conn:
            conn.execute(
                insert(data_rows),
                [
                    {"id": i, "org_id": org_id, "dataset_id": dataset_id, "media_type": "IMAGE",
                     "row_data": f'"s3://bucket/img/{i}.jpg"', "created_at": now,
                     "updated_at": now, "global_key": None, "external_id": None,
                     "media_attributes": None, "metadata": None, "attachments": None,
                     "extra": None, "created_by": user_id}
                    for i in ids
                ],
            )  # fmt: skip
            labels.add_tasks(conn, org_id, project_id, ids)
            base = {"org_id": org_id, "project_id": project_id, "result": [REGION]}
            labels.insert_annotations(
                conn,
                [{**base, "data_row_id": i, "completed_by": user_id, "lead_time": 3.5}
                 for i in ids],
            )  # fmt: skip
    return org_id, project_id


def _fields(backend: str, work: Path, stack: ExitStack) -> dict[str, Any]:
    if backend == "local":
        folder = work / "documents" / "out"
        folder.mkdir()
        return {"path": str(folder)}
    moto = stack.enter_context(moto_server(work))
    return {
        "bucket": moto_bucket(moto),
        "prefix": "exports",
        "endpoint_url": moto,
        "access_key_id": "bench",
        "secret_access_key": "bench",
    }


def _run(
    engine: Engine,
    settings: Settings,
    org_id: int,
    project_id: int,
    backend: str,
    fields: dict[str, Any],
    n: int,
) -> None:
    with engine.begin() as conn:
        storage_id = insert_storage(
            conn, settings, org_id=org_id, type_=backend, fields=fields,
            project_id=project_id, role="target", title="bench",
        )  # fmt: skip
        record = get_record(conn, settings, org_id, storage_id)
    storage = _raw_backend(settings, record, backend)
    objects = list(_objects(engine, settings, org_id, storage_id))
    raw = [(_raw_key(backend, key), body) for key, body in objects]
    raw_seconds = _write_raw(storage, raw)
    export_seconds, job = _export(engine, settings, org_id, storage_id)
    assert job["counts"]["written"] == n and job["counts"]["failed"] == 0, job
    raw_rate, rate = n / raw_seconds, n / export_seconds
    print(f"\n{backend} ({target_export.WRITERS} writers, batches of {target_export.BATCH})")
    line("raw writes", f"{raw_rate:,.0f} obj/s", f"{n:,} objects in {raw_seconds:.2f} s")
    line("export", f"{rate:,.0f} obj/s", f"{n:,} objects in {export_seconds:.2f} s")
    verdict = "ok" if rate / raw_rate >= TARGET_RATIO else "BELOW TARGET"
    line("ratio", f"{rate / raw_rate:.2f}", f"export / raw ({verdict})", f">= {TARGET_RATIO}")

    changed = _change(engine, org_id, project_id)
    wanted = {str(i) for i in changed}
    fresh = [(k, b) for k, b in _objects(engine, settings, org_id, storage_id, wanted)]
    raw_change = _write_raw(storage, [(_raw_key(backend, k), b) for k, b in fresh])
    change_seconds, job = _export(engine, settings, org_id, storage_id)
    counts = job["counts"]
    assert counts["written"] == len(changed) and counts["unchanged"] == n - len(changed), counts
    ratio = change_seconds / raw_change
    verdict = "ok" if ratio <= TARGET_CHANGE else "ABOVE TARGET"
    line("raw 1% writes", f"{raw_change:.3f} s", f"{len(changed):,} objects")
    line("re-export 1%", f"{change_seconds:.3f} s", f"written {counts['written']:,}, "
         f"unchanged {counts['unchanged']:,}")  # fmt: skip
    line("ratio", f"{ratio:.2f}", f"re-export / raw 1% ({verdict})", f"<= {TARGET_CHANGE}")
    close = getattr(storage, "close", None)
    if close is not None:
        close()


def _raw_backend(settings: Settings, record: StorageRecord, backend: str) -> Storage:
    """The client the raw writes use: the export's (``open_backend`` of its record). For a
    local folder, opened on a sibling folder: the export then writes into an empty folder
    as the raw writes did (a file costs the more, the more files its folder holds), by the
    same path (a key in the folder itself)."""
    if backend == "local":
        folder = Path(record.config["path"] + "-raw")
        folder.mkdir()
        record = replace(record, config={**record.config, "path": str(folder)})
    return open_backend(settings, record)


def _raw_key(backend: str, key: str) -> str:
    return key if backend == "local" else "raw/" + key.rsplit("/", 1)[-1]


def _objects(
    engine: Engine,
    settings: Settings,
    org_id: int,
    storage_id: int,
    only: set[str] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """(key, body) of every annotation's object, made by the export's own code."""
    with engine.connect() as conn:
        record = get_record(conn, settings, org_id, storage_id)
        assert record.project_id is not None
        config = projects.config_of(conn, org_id, record.project_id)
        ids = [
            int(i)
            for i in conn.execute(
                select(annotation_rows.c.id)
                .where(annotation_rows.c.project_id == record.project_id)
                .order_by(annotation_rows.c.id)
            ).scalars()
            if only is None or str(i) in only
        ]
        for start in range(0, len(ids), 1000):
            made = target_export.objects(conn, record, config, ids[start : start + 1000])
            for _id, _version, key, body in made:
                yield key, body


def _write_raw(storage: Storage, objects: list[tuple[str, bytes]]) -> float:
    """Seconds to put ``objects`` with ``storage`` by WRITERS threads."""

    def put(item: tuple[str, bytes]) -> None:
        storage.write(item[0], item[1], content_type="application/json")

    began = time.perf_counter()
    with ThreadPoolExecutor(target_export.WRITERS) as pool:
        for _ in pool.map(put, objects):
            pass
    return time.perf_counter() - began


def _export(
    engine: Engine, settings: Settings, org_id: int, storage_id: int
) -> tuple[float, dict[str, Any]]:
    from tether.jobs import service

    with engine.begin() as conn:
        job, _created = start_export(conn, org_id, storage_id)
    began = time.perf_counter()
    target_export.run_export(engine, settings, job["id"])
    seconds = time.perf_counter() - began
    with engine.connect() as conn:
        return seconds, service.get(conn, org_id, job["id"])


def _change(engine: Engine, org_id: int, project_id: int) -> list[int]:
    """Edit every hundredth annotation as a save does (``labels.update_annotation``)."""
    a = annotation_rows
    with engine.begin() as conn:
        ids = [
            int(i)
            for i in conn.execute(
                select(a.c.id).where(a.c.project_id == project_id).order_by(a.c.id)
            ).scalars()
        ][::100]
        for annotation_id in ids:
            labels.update_annotation(conn, org_id, annotation_id, {"lead_time": 4.5})
    return ids


if __name__ == "__main__":
    main()
