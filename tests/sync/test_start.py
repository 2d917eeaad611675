"""Starting syncs: one at a time per storage (even when starts race), schedules that fire
once per due time, and a sync cut off mid-way that resumes to the exact counts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tests.sync.conftest import Source, memory_source
from tests.sync.helpers import Place, counts, expect, new_place
from tether.catalog import store
from tether.db.tables import data_rows, jobs, storages
from tether.errors import Invalid, NotFound
from tether.jobs import service
from tether.sync import links
from tether.sync.runner import run_sync
from tether.sync.start import start_due_syncs, start_sync, submit_sync


def _start(place: Place, storage_id: int) -> tuple[dict[str, Any], bool]:
    with place.engine.begin() as conn:
        return start_sync(conn, place.org_id, storage_id)


def test_a_second_start_returns_the_queued_or_running_job(place: Place) -> None:
    storage_id = place.storage("memory", memory_source().fields)
    first, created = _start(place, storage_id)
    assert created and first["status"] == "queued" and first["storage_id"] == storage_id
    second, created = _start(place, storage_id)
    assert not created and second["id"] == first["id"]
    with place.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == first["id"]).values(status="running"))
    third, created = _start(place, storage_id)
    assert not created and third["id"] == first["id"]
    with place.engine.connect() as conn:
        last = conn.execute(
            select(storages.c.last_sync_job_id).where(storages.c.id == storage_id)
        ).scalar_one()
    assert last == first["id"]
    run_sync(place.engine, place.settings, first["id"])
    fourth, created = _start(place, storage_id)
    assert created and fourth["id"] != first["id"]


def test_the_database_refuses_a_second_active_sync(place: Place) -> None:
    """The guard holds even for a writer that does not look first."""
    storage_id = place.storage("memory", memory_source().fields)
    _start(place, storage_id)
    row = {
        "id": "f" * 32,
        "org_id": place.org_id,
        "kind": "sync",
        "status": "running",
        "storage_id": storage_id,
        "created_at": datetime.now(UTC),
        "done": 0,
        "failed": 0,
    }
    with pytest.raises(IntegrityError), place.engine.begin() as conn:
        conn.execute(insert(jobs).values(**row))


def test_starts_racing_in_threads_make_one_job(place: Place) -> None:
    storage_id = place.storage("memory", memory_source().fields)
    barrier = threading.Barrier(6)
    results: list[tuple[str, bool]] = []

    def start() -> None:
        barrier.wait()
        job, created = _start(place, storage_id)
        results.append((job["id"], created))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    assert len({job_id for job_id, _created in results}) == 1
    assert sum(created for _job_id, created in results) == 1


def test_only_source_storages_of_the_callers_organization_sync(
    place: Place, engine: Any, sync_settings: Any
) -> None:
    storage_id = place.storage("memory", memory_source().fields)
    other = new_place(engine, sync_settings)
    with pytest.raises(NotFound), engine.begin() as conn:
        start_sync(conn, other.org_id, storage_id)
    target = place.storage("memory", memory_source().fields, role="target")
    with pytest.raises(Invalid), engine.begin() as conn:
        start_sync(conn, place.org_id, target)


def test_a_schedule_starts_one_sync_per_due_time(place: Place) -> None:
    source = memory_source()
    source.put("a.jpg")
    storage_id = place.storage("memory", source.fields, sync_every_minutes=30)
    queued: list[str] = []
    now = datetime.now(UTC)
    # Two workers' chores at the same moment: one sync.
    first = start_due_syncs(place.engine, queued.append, now)
    second = start_due_syncs(place.engine, queued.append, now)
    assert len(first) == 1 and second == [] and queued == first
    with place.engine.connect() as conn:
        next_at = conn.execute(
            select(storages.c.next_sync_at).where(storages.c.id == storage_id)
        ).scalar_one()
    assert abs((_aware(next_at) - now) - timedelta(minutes=30)) < timedelta(seconds=1)
    run_sync(place.engine, place.settings, first[0])
    assert start_due_syncs(place.engine, queued.append, now + timedelta(minutes=5)) == []
    later = start_due_syncs(place.engine, queued.append, now + timedelta(minutes=31))
    assert len(later) == 1 and later[0] != first[0]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_submit_queues_the_job(place: Place) -> None:
    source = memory_source()
    source.put("a.jpg")
    storage_id = place.storage("memory", source.fields)
    queued: list[str] = []
    job, created = submit_sync(place.engine, queued.append, place.org_id, storage_id)
    assert created and queued == [job["id"]]
    again, created = submit_sync(place.engine, queued.append, place.org_id, storage_id)
    assert not created and again["id"] == job["id"] and queued == [job["id"]] * 2


class Killed(BaseException):
    """What a SIGKILL does to a sync: it stops in the middle of a chunk's transaction."""


def test_a_sync_killed_mid_chunk_resumes_to_the_exact_counts(
    place: Place, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"d{i % 4}/{i:03d}.jpg" for i in range(60)]
    for key in keys:
        source.put(key)
    storage_id = place.storage(source.type, source.fields, remove_missing=True)
    place.sync(storage_id, chunk_objects=7)
    for key in keys[::5]:
        source.put(key, b"changed")
    for key in keys[1::6]:
        source.drop(key)
    for i in range(20):
        source.put(f"new/{i:02d}.png")

    real = store.write_rows
    calls = 0

    def dying(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = real(*args, **kwargs)
        if calls == 2:
            raise Killed  # rows written, not committed
        return result

    monkeypatch.setattr(store, "write_rows", dying)
    job, _created = _start(place, storage_id)
    with pytest.raises(Killed):
        run_sync(place.engine, place.settings, job["id"], chunk_objects=7)
    cut = place.job(job["id"])
    assert cut["status"] == "running" and 0 < cut["progress"]["done"] < 80
    with place.engine.connect() as conn:
        landed = conn.execute(
            select(func.count()).where(data_rows.c.dataset_id == place.dataset_id)
        ).scalar_one()
    assert landed == 60 + cut["counts"]["created"] - cut["counts"]["removed"]

    monkeypatch.setattr(store, "write_rows", real)
    with place.engine.begin() as conn:  # the lease runs out: another worker may take it
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(lease_until=None))
    run_sync(place.engine, place.settings, job["id"], chunk_objects=7)
    done = place.job(job["id"])
    gone, changed = len(keys[1::6]), len(set(keys[::5]) - set(keys[1::6]))
    assert counts(done) == expect(
        listed=60 - gone + 20,
        created=20,
        updated=changed,
        unchanged=60 - gone - changed,
        missing=gone,
        removed=gone,
    )
    assert done["status"] == "completed"
    assert place.count() == 60 - gone + 20
    assert len(place.links(storage_id)) == 60 - gone + 20
    again = place.sync(storage_id, chunk_objects=7)
    assert counts(again) == expect(listed=80 - gone, unchanged=80 - gone)


def test_a_canceled_sync_stops_after_a_chunk_with_it_counted(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = memory_source()
    for i in range(30):
        source.put(f"{i:02d}.jpg")
    storage_id = place.storage("memory", source.fields)
    job, _created = _start(place, storage_id)
    with place.engine.begin() as conn:
        service.cancel(conn, place.org_id, job["id"])  # queued: canceled at once
    run_sync(place.engine, place.settings, job["id"], chunk_objects=5)
    assert place.job(job["id"])["status"] == "canceled" and place.count() == 0

    job, _created = _start(place, storage_id)
    real = links.insert

    def asked_meanwhile(conn: Any, *args: Any) -> None:
        real(conn, *args)
        # The user cancels while the second chunk is being written.
        if len(place.links(storage_id)) == 5:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job["id"])
                .values(cancel_requested_at=datetime.now(UTC))
            )

    monkeypatch.setattr(links, "insert", asked_meanwhile)
    run_sync(place.engine, place.settings, job["id"], chunk_objects=5)
    canceled = place.job(job["id"])
    assert canceled["status"] == "canceled"
    assert counts(canceled) == expect(listed=10, created=10)
    assert place.count() == 10 and "canceled after 10 objects" in canceled["message"]
    # The next sync goes on from what is there.
    monkeypatch.setattr(links, "insert", real)
    assert counts(place.sync(storage_id)) == expect(listed=30, created=20, unchanged=10)
