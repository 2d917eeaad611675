"""A sync split into parts by first-level folder ends exactly as an unsplit one: every
object once, the counts and errors summed on the parent."""

from __future__ import annotations

import itertools

from tests.sync.conftest import memory_source
from tests.sync.helpers import Place, counts, expect
from tether.storages.memory import MemoryStorage
from tether.sync.runner import run_sync
from tether.sync.split import folders, ranges
from tether.sync.start import start_sync

KEYS = [
    "a-b.jpg",  # '-' sorts before '/': before the folder a/
    "a.jpg",
    "a/1.jpg",
    "a/b/2.jpg",
    "a0.jpg",
    "b/x.jpg",
    "b/y.bin",
    "c/😀.jpg",
    "c/z.jpg",
    "top.png",
    "z/last.jpg",
    "é/1.png",
]


def _folders(keys: list[str], prefix: str = "") -> list[str]:
    store = MemoryStorage()
    for key in keys:
        store.write(key, b"x")
    return folders(store, prefix)


def test_folders_and_ranges() -> None:
    assert _folders(KEYS) == ["a/", "b/", "c/", "z/", "é/"]
    assert _folders(["p/x/1.jpg", "p/y/2.jpg", "p/z.jpg", "q/1.jpg"], "p/") == ["p/x/", "p/y/"]
    assert _folders(["flat.jpg", "flat2.jpg"]) == []
    assert ranges(["a/"], 4) == [(None, None)]
    assert ranges(["a/", "b/", "c/", "d/"], 2) == [(None, "c/"), ("c/", None)]
    cut = ranges(["a/", "b/", "c/"], 8)
    assert cut[0][0] is None and cut[-1][1] is None
    assert all(left[1] == right[0] for left, right in itertools.pairwise(cut))


def test_a_split_sync_syncs_every_object_once(place: Place) -> None:
    source = memory_source()
    for key in KEYS:
        source.put(key)
    storage_id = place.storage("memory", source.fields, remove_missing=True)
    with place.engine.begin() as conn:
        job, _created = start_sync(conn, place.org_id, storage_id, parts=3)
    run_sync(place.engine, place.settings, job["id"], chunk_objects=2)
    done = place.job(job["id"])
    assert done["status"] == "completed_with_errors", done
    assert counts(done) == expect(listed=12, created=11, failed=1)
    assert len(done["details"]["parts"]) == 3
    [error] = place.errors(job["id"])  # the part's error, on the parent too
    assert error["item_key"] == "b/y.bin"
    assert [link.key for link in place.links(storage_id)] == sorted(set(KEYS) - {"b/y.bin"})

    source.drop("a/1.jpg")
    source.put("c/z.jpg", b"changed")
    with place.engine.begin() as conn:
        job, _created = start_sync(conn, place.org_id, storage_id, parts=3)
    run_sync(place.engine, place.settings, job["id"], chunk_objects=2)
    again = place.job(job["id"])
    assert counts(again) == expect(
        listed=11, unchanged=9, updated=1, missing=1, removed=1, failed=1
    )
    assert place.count() == 10
