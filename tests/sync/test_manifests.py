"""Objects that hold tasks (``treat_every_object_as_source_file`` off), read by the import
readers: one task, a JSON list of tasks, NDJSON, Labelbox rows; a bad object is one error."""

from __future__ import annotations

import orjson

from tests.sync.conftest import Source
from tests.sync.helpers import Place, counts, expect


def _task(text: str) -> dict[str, object]:
    return {"data": {"text": text}, "annotations": []}


def test_manifest_objects_of_every_shape(place: Place, source: Source) -> None:
    source.put("one.json", orjson.dumps({"data": {"image": "s3://b/1.jpg"}}))
    source.put("list.json", orjson.dumps([_task("a"), _task("b"), _task("c")]))
    source.put("lines.ndjson", b"\n".join(orjson.dumps(_task(t)) for t in ("d", "e")))
    labelbox = [{"row_data": "s3://b/x.png", "global_key": f"lb-{place.dataset_id}"}]
    source.put("labelbox.json", orjson.dumps(labelbox))
    source.put("broken.json", b'{"data": {"text": "no end"')
    storage_id = place.storage(source.type, source.fields, treat_every_object_as_source_file=False)
    job = place.sync(storage_id, chunk_objects=2)
    assert job["status"] == "completed_with_errors", job
    assert counts(job) == expect(listed=5, created=7, failed=1)
    [error] = place.errors(job["id"])
    assert error["item_key"] == "broken.json"
    links = [(link.key, link.item_index) for link in place.links(storage_id)]
    assert links == [
        ("labelbox.json", 0),
        ("lines.ndjson", 0),
        ("lines.ndjson", 1),
        ("list.json", 0),
        ("list.json", 1),
        ("list.json", 2),
        ("one.json", 0),
    ]
    texts = sorted(orjson.loads(r.row_data)["text"] for r in place.rows() if r.media_type == "TEXT")
    assert texts == ["a", "b", "c", "d", "e"]
    keyed = [r for r in place.rows() if r.global_key is not None]
    assert [r.global_key for r in keyed] == [f"lb-{place.dataset_id}"]

    # Again: nothing new; the broken object is still broken (one error again).
    again = place.sync(storage_id, chunk_objects=2)
    assert counts(again) == expect(listed=5, unchanged=4, failed=1)
    assert place.count() == 7


def test_a_changed_manifest_updates_adds_and_removes_its_items(
    place: Place, source: Source
) -> None:
    source.put("tasks.json", orjson.dumps([_task("a"), _task("b"), _task("c")]))
    storage_id = place.storage(source.type, source.fields, treat_every_object_as_source_file=False)
    place.sync(storage_id)
    ids = {link.item_index: link.data_row_id for link in place.links(storage_id)}

    source.put("tasks.json", orjson.dumps([_task("A"), _task("b")]))
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=1, updated=2, removed=1)
    after = {link.item_index: link.data_row_id for link in place.links(storage_id)}
    assert after == {0: ids[0], 1: ids[1]}
    assert sorted(orjson.loads(r.row_data)["text"] for r in place.rows()) == ["A", "b"]

    source.put("tasks.json", orjson.dumps([_task("A"), _task("b"), _task("new")]))
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=1, updated=2, created=1)
    assert place.count() == 3

    # Broken now: the object is one error, and its rows stay as they were.
    source.put("tasks.json", b"[{]")
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=1, failed=1)
    assert place.count() == 3


def test_a_bad_item_of_a_list_is_one_error_and_the_rest_land(place: Place, source: Source) -> None:
    body = b'[{"data": {"text": "ok"}}, {"data": {"text": 1, "text": 2}}, {"data": {"t": "x"}}]'
    source.put("mixed.json", body)
    storage_id = place.storage(source.type, source.fields, treat_every_object_as_source_file=False)
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=1, created=2, failed=1)
    [error] = place.errors(job["id"])
    assert error["item_key"] == "mixed.json" and error["details"] == {"item_index": 1}
    assert [link.item_index for link in place.links(storage_id)] == [0, 2]


def test_global_keys_another_row_holds_are_errors_of_their_items(
    place: Place, source: Source
) -> None:
    tag = f"gk-{place.dataset_id}"
    source.put("a.json", orjson.dumps([{"row_data": "s3://b/1.jpg", "global_key": f"{tag}-1"}]))
    source.put("b.json", orjson.dumps([{"row_data": "s3://b/2.jpg", "global_key": f"{tag}-2"}]))
    storage_id = place.storage(source.type, source.fields, treat_every_object_as_source_file=False)
    assert counts(place.sync(storage_id)) == expect(listed=2, created=2)
    # a.json now takes b.json's key, and c.json the same key again: one error each.
    source.put("a.json", orjson.dumps([{"row_data": "s3://b/1.jpg", "global_key": f"{tag}-2"}]))
    source.put("c.json", orjson.dumps([{"row_data": "s3://b/3.jpg", "global_key": f"{tag}-2"}]))
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=3, unchanged=1, failed=2)
    codes = sorted((e["item_key"], e["code"]) for e in place.errors(job["id"]))
    assert codes == [("a.json", "global_key_exists"), ("c.json", "global_key_exists")]
    keys = sorted(r.global_key for r in place.rows())
    assert keys == [f"{tag}-1", f"{tag}-2"]
