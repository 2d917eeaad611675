"""An export on real ``tether worker`` processes (PostgreSQL, a Redis queue) whose worker is
killed (SIGKILL) in the middle: the other worker resumes it after the lease, and in the end
every annotation's object is there at its version, the counts are exact, and no object was
written again but those of the batches in flight when the worker died."""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import make_tenant
from tests.projects.targets_setup import Labeled, labeled, target
from tests.sync.test_sync_recovery import _state, _stop, _wait_finished, _workers
from tests.test_job_recovery import redis_url  # noqa: F401 - a fixture
from tether.config import Settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.jobs.queue import JobQueue
from tether.projects import target_export
from tether.projects.targets import start_export

pytestmark = pytest.mark.e2e
LEASE_SECONDS = 3.0
ANNOTATIONS = 20_000


@pytest.fixture
def place(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A project of ANNOTATIONS annotations (every tenth edited once) on PostgreSQL, an
    empty local target folder, and the environment of workers that share them."""
    from tether.api.app import create_app

    root = tmp_path / "documents"
    (root / "out").mkdir(parents=True)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        queue_url="immediate",  # the in-process API that sets it up runs its imports at once
        secret_key=None,
        local_files_serving_enabled=True,
        local_files_document_root=root,
    )
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        client = TestClient(create_app(settings))
    with client:
        tenant = make_tenant(engine, client)
        done = labeled(tenant, engine, ANNOTATIONS)
        done.edit(*done.annotations[::10])
        storage = target(
            tenant, {"type": "local", "project_id": done.project_id, "path": str(root / "out")}
        )
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_DATABASE_URL": pg_url,
        "TETHER_QUEUE_URL": redis_url,
        "TETHER_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "TETHER_LOCAL_FILES_SERVING_ENABLED": "true",
        "TETHER_LOCAL_FILES_DOCUMENT_ROOT": str(root),
    }
    queue_settings = settings.model_copy(update={"queue_url": redis_url})
    yield {
        "engine": engine,
        "settings": queue_settings,
        "labeled": done,
        "storage_id": storage["id"],
        "folder": root / "out",
        "env": env,
    }
    engine.dispose()


def _objects(folder: Path) -> dict[str, int]:
    """Object name -> inode (a write goes to a new file renamed into place: a new inode)."""
    return {p.name: p.stat().st_ino for p in folder.iterdir() if p.name.isdigit()}


def test_a_killed_workers_export_is_finished_by_the_other_worker(place: dict[str, Any]) -> None:
    engine, done = place["engine"], place["labeled"]
    assert isinstance(done, Labeled)
    workers = _workers(place["env"], 2)
    try:
        with engine.begin() as conn:
            job, _created = start_export(conn, done.tenant.org_id, place["storage_id"])
        JobQueue(place["settings"], engine).enqueue(job["id"])
        deadline = time.monotonic() + 120
        while True:
            state = _state(engine, job["id"])
            if state.claimed_by is not None and state.done >= 2000:
                break
            assert state.status in ("queued", "running") and time.monotonic() < deadline
            time.sleep(0.005)
        assert state.status == "running" and state.done < ANNOTATIONS, "the kill came too late"
        [victim] = [w for w in workers if f":{w.pid}:" in state.claimed_by]
        [survivor] = [w for w in workers if w is not victim]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        at_kill = _objects(place["folder"])
        committed = _state(engine, job["id"]).done

        final = _wait_finished(engine, job["id"])
        assert final.status == "completed", final
        assert f":{survivor.pid}:" in final.claimed_by
    finally:
        _stop(workers)
    assert final.done == ANNOTATIONS
    assert orjson.loads(final.counts) == {"written": ANNOTATIONS, "unchanged": 0, "deleted": 0}

    after = _objects(place["folder"])
    assert sorted(after, key=int) == [str(i) for i in done.annotations], "none missing"
    rewritten = [name for name, inode in at_kill.items() if after[name] != inode]
    assert len(rewritten) <= 2 * target_export.BATCH, (len(rewritten), committed)
    assert len(at_kill) >= committed, "objects of committed batches were there at the kill"
    assert done.links(place["storage_id"]) == done.versions()
    edited = {str(i) for i in done.annotations[::10]}
    for name in list(after)[:: max(1, ANNOTATIONS // 500)]:
        body = orjson.loads((place["folder"] / name).read_bytes())
        assert body["id"] == int(name)
        assert (body["result"][0]["id"] == "edited") == (name in edited), name
    # a second export finds everything exported already
    with engine.begin() as conn:
        again, _ = start_export(conn, done.tenant.org_id, place["storage_id"])
    target_export.run_export(engine, place["settings"], again["id"])
    assert _objects(place["folder"]) == after
    assert _state(engine, again["id"]).done == ANNOTATIONS
