"""Syncs on real ``tether worker`` processes, PostgreSQL and a Redis queue: a worker killed
(SIGKILL) in the middle of a sync; the other one resumes it after the lease and ends with the
exact counts, every object's row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.sync.helpers import Place, new_place
from tests.test_job_recovery import redis_url  # noqa: F401 - a fixture
from tether.config import Settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.db.tables import data_rows, jobs, storage_links
from tether.jobs.queue import JobQueue
from tether.sync.start import start_sync

pytestmark = pytest.mark.e2e
TETHER = str(Path(sys.executable).parent / "tether")
LEASE_SECONDS = 3.0
OBJECTS = 12_000


@pytest.fixture
def shared(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[Place, dict[str, str]]]:  # noqa: F811
    """A folder of files under a document root, a PostgreSQL database and a Redis queue,
    with the environment of workers that share them."""
    root = tmp_path / "documents"
    folder = root / "store"
    for i in range(OBJECTS):
        sub = folder / f"d{i % 40:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:06d}.jpg").write_bytes(b"x")
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_DATABASE_URL": pg_url,
        "TETHER_QUEUE_URL": redis_url,
        "TETHER_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "TETHER_SYNC_CHUNK_OBJECTS": "300",
        "TETHER_LOCAL_FILES_SERVING_ENABLED": "true",
        "TETHER_LOCAL_FILES_DOCUMENT_ROOT": str(root),
    }
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        queue_url=redis_url,
        secret_key=None,
        local_files_serving_enabled=True,
        local_files_document_root=root,
        job_lease_seconds=LEASE_SECONDS,
    )
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    yield new_place(engine, settings), env
    engine.dispose()


def _workers(env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` workers, each up before any job is queued (on a busy machine one that
    starts late would leave every part to the other)."""
    procs = [
        subprocess.Popen(
            [TETHER, "worker"],
            env={**env, "PYTHONUNBUFFERED": "1"},  # its first line reaches the pipe at once
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stderr is not None
        for line in iter(proc.stderr.readline, b""):
            if line.startswith(b"tether worker"):  # "tether worker: N thread(s)": it consumes
                break
        else:
            raise AssertionError("the worker ended before it started")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # its log, drained
    time.sleep(1)  # the consumer's threads start polling the queue
    return procs


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()
    for proc in workers:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _state(engine: Engine, job_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(jobs.c.status, jobs.c.claimed_by, jobs.c.done, jobs.c.counts).where(
                jobs.c.id == job_id
            )
        ).one()


def _wait_finished(engine: Engine, job_id: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        state = _state(engine, job_id)
        if state.status not in ("queued", "running"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def test_a_killed_workers_sync_is_finished_by_the_other_worker(
    shared: tuple[Place, dict[str, str]],
) -> None:
    place, env = shared
    folder = str(place.settings.local_files_document_root / "store")  # type: ignore[operator]
    storage_id = place.storage("local", {"path": folder}, title=f"s-{uuid.uuid4().hex[:6]}")
    workers = _workers(env, 2)
    try:
        with place.engine.begin() as conn:
            job, _created = start_sync(conn, place.org_id, storage_id)
        JobQueue(place.settings, place.engine).enqueue(job["id"])
        deadline = time.monotonic() + 120
        while True:
            state = _state(place.engine, job["id"])
            if state.claimed_by is not None and state.done >= 2000:
                break
            assert state.status in ("queued", "running") and time.monotonic() < deadline
            time.sleep(0.005)
        assert state.status == "running" and state.done < OBJECTS, "the kill came too late"
        [victim] = [w for w in workers if f":{w.pid}:" in state.claimed_by]
        [survivor] = [w for w in workers if w is not victim]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()

        final = _wait_finished(place.engine, job["id"])
        assert final.status == "completed", final
        assert f":{survivor.pid}:" in final.claimed_by
        assert time.monotonic() - killed_at < 120
        done = place.job(job["id"])
        assert done["counts"] == {
            "listed": OBJECTS,
            "created": OBJECTS,
            "updated": 0,
            "unchanged": 0,
            "missing": 0,
            "removed": 0,
            "failed": 0,
        }
        assert done["progress"]["done"] == OBJECTS
    finally:
        _stop(workers)
    with place.engine.connect() as conn:
        mine = data_rows.c.dataset_id == place.dataset_id
        total = conn.execute(select(func.count()).where(mine)).scalar_one()
        distinct = conn.execute(select(func.count(data_rows.c.row_data.distinct())).where(mine))
        linked = conn.execute(
            select(func.count()).where(storage_links.c.storage_id == storage_id)
        ).scalar_one()
    assert total == distinct.scalar_one() == linked == OBJECTS


def test_a_split_sync_runs_on_both_workers(shared: tuple[Place, dict[str, str]]) -> None:
    """The sync of a store of 40 folders, split in 6 parts: both workers run it (the parent
    and parts), and the parent ends with the counts of one sync."""
    place, env = shared
    folder = str(place.settings.local_files_document_root / "store")  # type: ignore[operator]
    storage_id = place.storage("local", {"path": folder})
    workers = _workers(env, 2)
    try:
        with place.engine.begin() as conn:
            job, _created = start_sync(conn, place.org_id, storage_id, parts=6)
        JobQueue(place.settings, place.engine).enqueue(job["id"])
        final = _wait_finished(place.engine, job["id"])
        assert final.status == "completed", final
        done = place.job(job["id"])
        assert done["counts"]["listed"] == done["counts"]["created"] == OBJECTS
        assert done["progress"]["done"] == OBJECTS
        with place.engine.connect() as conn:
            parts = conn.execute(
                select(jobs.c.status, jobs.c.claimed_by, jobs.c.done).where(
                    jobs.c.id.in_(done["details"]["parts"])
                )
            ).all()
        assert len(parts) == 6 and {p.status for p in parts} == {"completed"}
        assert sum(p.done for p in parts) == OBJECTS
        # Both workers took part: the parent's (which waits for its parts, helping when they
        # wait) and the parts'. On an idle machine one worker may finish every part before the
        # parent's worker helps, so the parent's runner counts.
        with place.engine.connect() as conn:
            parent = conn.execute(select(jobs.c.claimed_by).where(jobs.c.id == job["id"])).scalar()
        claims = [p.claimed_by or "" for p in parts] + [parent or ""]
        runners = {w.pid for w in workers for claim in claims if f":{w.pid}:" in claim}
        assert runners == {w.pid for w in workers}, "both workers ran the sync"
    finally:
        _stop(workers)
    with place.engine.connect() as conn:
        linked = conn.execute(
            select(func.count()).where(storage_links.c.storage_id == storage_id)
        ).scalar_one()
        rows = conn.execute(
            select(func.count()).where(data_rows.c.dataset_id == place.dataset_id)
        ).scalar_one()
    assert linked == rows == OBJECTS
