"""Syncing a source storage whose objects are the assets (one row an object), on memory,
local folders and Redis, on SQLite and PostgreSQL: awkward keys, re-syncs that create
nothing, changed and deleted objects, regex and recursive scans, prefixes."""

from __future__ import annotations

import orjson
import pytest

from tests.sync.conftest import Source, memory_source
from tests.sync.helpers import Place, counts, expect

# Keys whose byte order differs from other orders a database might use: case (B < a in
# bytes), accents after z, characters beyond the BMP after U+FFFD (UTF-16 would put them
# first), and characters URLs treat specially.
AWKWARD = [
    "a b.jpg",
    "100%.jpg",
    "c++.png",
    "#1.jpg",
    "what?.jpg",
    "B.jpg",
    "a.jpg",
    "z.jpg",
    "é.jpg",
    "\ufffd.jpg",
    "\uff21.jpg",
    "😀.jpg",
    "𝄞/音.jpg",
    "日本/語.png",
    "deep/a/b/c/d/e.jpg",
    "img/1.jpg",
    "img2/x.jpg",
    "img-x.jpg",
    "img.jpg",
    "~tilde.png",
]


def test_awkward_keys_sync_once_and_a_resync_creates_nothing(place: Place, source: Source) -> None:
    for key in AWKWARD:
        source.put(key, key.encode())
    storage_id = place.storage(source.type, source.fields)
    first = place.sync(storage_id, chunk_objects=3)
    assert first["status"] == "completed", first
    assert counts(first) == expect(listed=len(AWKWARD), created=len(AWKWARD))
    # The links, read in the database's key order, are in Python's (UTF-8 byte) order.
    links = place.links(storage_id)
    assert [link.key for link in links] == sorted(AWKWARD)
    rows = {row.id: row for row in place.rows()}
    assert len(rows) == len(AWKWARD)
    for link in links:
        row = rows[link.data_row_id]
        assert orjson.loads(row.row_data) == source.storage.uri(link.key)
        attributes = orjson.loads(row.media_attributes)
        assert attributes["size"] == len(link.key.encode())
        assert attributes["mimeType"] in ("image/jpeg", "image/png")
        assert row.media_type == "IMAGE"

    again = place.sync(storage_id, chunk_objects=3)
    assert counts(again) == expect(listed=len(AWKWARD), unchanged=len(AWKWARD))
    assert place.count() == len(AWKWARD)
    assert again["progress"]["done"] == len(AWKWARD)


def test_changed_objects_update_and_deleted_ones_are_missing(place: Place, source: Source) -> None:
    keys = [f"f{i:02d}.jpg" for i in range(12)]
    for key in keys:
        source.put(key, b"one")
    storage_id = place.storage(source.type, source.fields)
    place.sync(storage_id, chunk_objects=4)
    before = {link.key: link for link in place.links(storage_id)}

    source.put("f03.jpg", b"changed")
    source.drop("f07.jpg")
    source.put("f99.jpg", b"new")
    job = place.sync(storage_id, chunk_objects=4)
    assert counts(job) == expect(listed=12, created=1, updated=1, unchanged=10, missing=1)
    after = {link.key: link for link in place.links(storage_id)}
    assert after["f03.jpg"].version != before["f03.jpg"].version
    assert after["f03.jpg"].data_row_id == before["f03.jpg"].data_row_id
    assert "f07.jpg" in after, "without remove_missing the row and its link stay"
    changed = next(r for r in place.rows() if r.id == after["f03.jpg"].data_row_id)
    assert orjson.loads(changed.media_attributes)["size"] == len(b"changed")
    assert place.count() == 13

    # Missing again next time (still gone), and nothing else moves.
    job = place.sync(storage_id, chunk_objects=4)
    assert counts(job) == expect(listed=12, unchanged=12, missing=1)


def test_remove_missing_removes_rows_and_links(place: Place, source: Source) -> None:
    keys = [f"k/{i}.png" for i in range(9)]
    for key in keys:
        source.put(key)
    storage_id = place.storage(source.type, source.fields, remove_missing=True)
    place.sync(storage_id, chunk_objects=2)
    for key in keys[2:5]:
        source.drop(key)
    job = place.sync(storage_id, chunk_objects=2)
    assert counts(job) == expect(listed=6, unchanged=6, missing=3, removed=3)
    assert sorted(link.key for link in place.links(storage_id)) == sorted(keys[:2] + keys[5:])
    assert place.count() == 6
    job = place.sync(storage_id, chunk_objects=2)
    assert counts(job) == expect(listed=6, unchanged=6)


def test_regex_matches_the_whole_key_and_recursive_off_takes_direct_children(
    place: Place, source: Source
) -> None:
    for key in ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.png", "e.PNG"]:
        source.put(key)
    png = place.storage(source.type, source.fields, regex_filter=r".*\.png$")
    job = place.sync(png)
    assert counts(job) == expect(listed=3, created=3)
    assert [link.key for link in place.links(png)] == ["a.png", "sub/c.png", "sub/deeper/d.png"]
    # re.match anchors at the key's start: "sub/" takes only keys that begin with it.
    sub = place.storage(source.type, source.fields, regex_filter="sub/")
    place.sync(sub)
    assert [link.key for link in place.links(sub)] == ["sub/c.png", "sub/deeper/d.png"]
    flat = place.storage(source.type, source.fields, recursive=False)
    place.sync(flat)
    assert [link.key for link in place.links(flat)] == ["a.png", "b.jpg", "e.PNG"]


def test_an_object_of_unknown_kind_is_an_error_and_the_rest_syncs(
    place: Place, source: Source
) -> None:
    for key in ["a.jpg", "notes.bin", "b.mp4"]:
        source.put(key)
    storage_id = place.storage(source.type, source.fields)
    job = place.sync(storage_id)
    assert job["status"] == "completed_with_errors"
    assert counts(job) == expect(listed=3, created=2, failed=1)
    [error] = place.errors(job["id"])
    assert error["item_key"] == "notes.bin" and error["code"] == "unknown_media_type"
    kinds = sorted(row.media_type for row in place.rows())
    assert kinds == ["IMAGE", "VIDEO"]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("img", ["img/1.jpg", "img/sub/2.jpg", "img2/x.jpg"]),
        ("img/", ["img/1.jpg", "img/sub/2.jpg"]),
        ("", ["im.jpg", "img/1.jpg", "img/sub/2.jpg", "img2/x.jpg", "other/y.jpg"]),
    ],
)
def test_a_prefix_is_a_plain_string_prefix(place: Place, prefix: str, expected: list[str]) -> None:
    source = memory_source()
    for key in ["im.jpg", "img/1.jpg", "img/sub/2.jpg", "img2/x.jpg", "other/y.jpg"]:
        source.put(key)
    storage_id = place.storage("memory", {**source.fields, "prefix": prefix})
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=len(expected), created=len(expected))
    assert [link.key for link in place.links(storage_id)] == expected


def test_a_narrowed_prefix_makes_the_rest_missing(place: Place) -> None:
    source = memory_source()
    for key in ["img/1.jpg", "img2/x.jpg", "other/y.jpg"]:
        source.put(key)
    storage_id = place.storage("memory", source.fields, remove_missing=True)
    place.sync(storage_id)
    from sqlalchemy import update

    from tether.db.tables import storages

    with place.engine.begin() as conn:
        fields = orjson.dumps({**source.fields, "prefix": "img/"}).decode()
        conn.execute(update(storages).where(storages.c.id == storage_id).values(config=fields))
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=1, unchanged=1, missing=2, removed=2)
    assert [link.key for link in place.links(storage_id)] == ["img/1.jpg"]


def test_an_empty_store_syncs_to_nothing(place: Place, source: Source) -> None:
    storage_id = place.storage(source.type, source.fields)
    job = place.sync(storage_id)
    assert job["status"] == "completed"
    assert counts(job) == expect()


def test_rows_of_uploaded_files_are_adopted_not_made_twice(place: Place, source: Source) -> None:
    """``tether upload`` makes a row (global key = the object's URI) before any sync sees the
    object: the sync links that row instead of creating a second one. A row of another
    dataset, or one another storage already links, is not taken."""
    from tether.catalog import datasets
    from tether.catalog.metadata_schema import load_schema
    from tether.catalog.rows import normalize
    from tether.catalog.store import Target, write_rows

    names = ["up/a b.jpg", "up/c#1.png", "up/d.jpg", "up/e.jpg"]
    for key in names:
        source.put(key, key.encode())
    with place.engine.begin() as conn:
        other = datasets.create(conn, place.org_id, f"other-{names[0]}-{place.dataset_id}")
        schema = load_schema(conn, place.org_id)

        def put_rows(dataset_id: int, keys: list[str]) -> None:
            rows = [
                (
                    i,
                    normalize(
                        {"row_data": source.storage.uri(k), "global_key": source.storage.uri(k)},
                        schema,
                    ),
                )
                for i, k in enumerate(keys)
            ]
            result = write_rows(conn, Target(place.org_id, dataset_id, None, upsert=False), rows)
            assert result.created == len(keys), result

        put_rows(place.dataset_id, names[:2])  # uploaded into this dataset
        put_rows(int(other["id"]), names[2:3])  # the same object's row in another dataset
    storage_id = place.storage(source.type, source.fields)
    first = place.sync(storage_id, chunk_objects=3)
    assert first["status"] == "completed", first
    # the two uploaded rows are linked (unchanged); d.jpg's row of another dataset is not
    assert counts(first) == expect(listed=len(names), created=2, unchanged=2)
    rows = place.rows()
    assert len(rows) == len(names)  # no object has two rows here
    assert {link.key for link in place.links(storage_id)} == set(names)
    again = place.sync(storage_id)
    assert counts(again) == expect(listed=len(names), unchanged=len(names))
