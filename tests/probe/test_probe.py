"""Media attributes of real small files (JPEG, PNG, WebP, MP4, WAV, PDF) made here, read
through their storages with ranged reads: a local folder, the memory store, and an S3 bucket
on a moto server; unreadable assets are per-item errors; a large asset costs a bounded
number of bytes. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from tests.probe import media
from tests.probe.helpers import add_rows, attributes, probe
from tests.storages.servers import MotoS3
from tests.sync.helpers import Place
from tether.db.tables import data_rows
from tether.resolve.headers import Unreadable, attributes_of
from tether.resolve.probe import merged, storage_file
from tether.resolve.ranged import RangedFile
from tether.storages.memory import MemoryStorage
from tether.storages.registry import open_storage


def _folder(place: Place, files: dict[str, bytes]) -> tuple[int, Path]:
    root = place.settings.local_files_document_root
    assert root is not None
    folder = root / "media"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return place.storage("local", {"path": str(folder)}), folder


def _expected(made: dict[str, Any], data: bytes) -> dict[str, Any]:
    return {**made, "size": len(data)}


def _s3_fields(moto: MotoS3, bucket: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "endpoint_url": moto.url,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "max_retries": 0,
    }


def test_synced_local_files_get_their_media_attributes(place: Place) -> None:
    assets = media.assets()
    storage_id, _folder_path = _folder(place, {n: d for n, (d, _a) in assets.items()})
    synced = place.sync(storage_id)
    assert synced["counts"]["created"] == len(assets), synced
    before = attributes(place)
    job = probe(place)
    assert job["status"] == "completed", job
    assert job["counts"]["probed"] == len(assets)
    assert job["progress"] == {"done": len(assets), "total": len(assets)}
    after = attributes(place)
    for uri, found in after.items():
        name = uri.rsplit("/", 1)[-1].rsplit("=", 1)[-1]
        data, made = assets[name]
        # What the sync recorded stays (its mimeType from the extension), and is completed.
        assert {k: found[k] for k in before[uri]} == before[uri]
        assert {k: found[k] for k in (*made, "size")} == _expected(made, data), name
        assert "mimeType" in found
    # Done once, a second probe leaves every row as it is.
    again = probe(place)
    assert again["counts"]["unchanged"] == len(assets)
    assert attributes(place) == after


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("photo.jpg", "image/jpeg"),
        ("shot.png", "image/png"),
        ("pic.webp", "image/webp"),
        ("clip.mp4", "video/mp4"),
        ("doc.pdf", "application/pdf"),
    ],
)
def test_the_mime_type_comes_from_the_content_where_the_row_has_none(name: str, mime: str) -> None:
    data, made = media.assets()[name]
    store = MemoryStorage(bucket="m")
    # Named without an extension: only the bytes tell what it is.
    store.write("blob", data)
    found = attributes_of(storage_file(store, "blob", 1 << 20))
    assert found == {**made, "mimeType": mime, "size": len(data)}


def test_unreadable_assets_are_item_errors_and_their_rows_stay(place: Place) -> None:
    good, _made = media.assets()["photo.jpg"]
    clip, _ = media.assets()["clip.mp4"]
    files = {
        "fine.jpg": good,
        "garbage.jpg": b"this is not an image at all, only some text" * 10,
        "cut.mp4": clip[: len(clip) // 3],  # its moov box (at the end) is cut off
        "empty.png": b"",
    }
    storage_id, folder = _folder(place, files)
    place.sync(storage_id)
    (folder / "gone.pdf").write_bytes(media.pdf(1))
    place.sync(storage_id)
    (folder / "gone.pdf").unlink()  # synced, then removed from the folder
    before = attributes(place)
    job = probe(place)
    assert job["status"] == "completed_with_errors", job
    assert job["counts"]["probed"] == 1
    assert job["counts"]["failed"] == 4
    errors = {e["item_key"].rsplit("/", 1)[-1]: e for e in place.errors(job["id"])}
    assert {k.rsplit("=", 1)[-1] for k in errors} == {
        "garbage.jpg",
        "cut.mp4",
        "empty.png",
        "gone.pdf",
    }
    codes = {k.rsplit("=", 1)[-1]: e["code"] for k, e in errors.items()}
    assert codes["gone.pdf"] == "object_not_found"
    assert codes["garbage.jpg"] == "unknown_format"
    assert codes["cut.mp4"] == "unreadable_asset"
    after = attributes(place)
    for uri, found in after.items():
        if uri.endswith("fine.jpg"):
            assert found["width"] == 64
        else:
            assert found == before[uri], uri


def test_imported_s3_uris_are_probed_through_the_datasets_bucket(
    place: Place,
    moto_s3: MotoS3,
) -> None:
    bucket = moto_s3.new_bucket()
    store = open_storage("s3", **_s3_fields(moto_s3, bucket))
    assets = media.assets()
    for name, (data, _made) in assets.items():
        store.write(f"in/{name}", data)
    # Rows imported from a manifest of URIs: no sync made them, no link names a storage.
    add_rows(place, [{"row_data": f"s3://{bucket}/in/{name}"} for name in assets])
    add_rows(place, [{"row_data": "s3://another-bucket/in/photo.jpg"}])
    place.storage("s3", _s3_fields(moto_s3, bucket))
    job = probe(place)
    assert job["counts"]["probed"] == len(assets), job
    errors = place.errors(job["id"])
    assert [(e["item_key"], e["code"]) for e in errors] == [
        ("s3://another-bucket/in/photo.jpg", "no_storage")
    ]
    found = attributes(place)
    for name, (data, made) in assets.items():
        got = found[f"s3://{bucket}/in/{name}"]
        assert {k: got[k] for k in (*made, "size")} == _expected(made, data), name


def test_label_studio_tasks_are_probed_by_their_media_key(
    place: Place,
    moto_s3: MotoS3,
) -> None:
    bucket = moto_s3.new_bucket()
    store = open_storage("s3", **_s3_fields(moto_s3, bucket))
    assets = media.assets()
    for name in ("photo.jpg", "clip.mp4"):
        store.write(f"in/{name}", assets[name][0])
    add_rows(
        place,
        [
            {"row_data": {"caption": "a cat", "image": f"s3://{bucket}/in/photo.jpg"}},
            {"row_data": {"video": f"s3://{bucket}/in/clip.mp4", "notes": "s3://b/n.txt"}},
            {"row_data": {"text": "only words"}},
        ],
    )
    place.storage("s3", _s3_fields(moto_s3, bucket))
    job = probe(place)
    assert job["counts"]["probed"] == 2, job
    with place.engine.connect() as conn:
        rows = conn.execute(
            select(data_rows.c.media_type, data_rows.c.media_attributes).where(
                data_rows.c.dataset_id == place.dataset_id
            )
        ).all()
    found = {r.media_type: orjson.loads(r.media_attributes or "{}") for r in rows}
    for media_type, name in (("IMAGE", "photo.jpg"), ("VIDEO", "clip.mp4")):
        data, made = assets[name]
        got = found[media_type]
        assert {k: got[k] for k in (*made, "size")} == _expected(made, data), name


def test_a_large_asset_costs_a_bounded_number_of_bytes() -> None:
    store = MemoryStorage(bucket="big")
    video = media.mp4(320, 240, 30, 120, noise=True)
    sound = media.wav(120, rate=44100, noise=True)
    assert len(video) > 2_000_000 and len(sound) > 10_000_000
    store.write("v.mp4", video)
    store.write("a.wav", sound)
    for key, made in (
        ("v.mp4", {"width": 320, "height": 240, "duration": 4.0}),
        ("a.wav", {"duration": 120.0}),
    ):
        file = storage_file(store, key, 16 << 20)
        found = attributes_of(file)
        assert {k: found[k] for k in made} == made
        assert file.fetched <= 512 * 1024, (key, file.fetched)
        assert file.requests <= 8, (key, file.requests)
    # A budget smaller than what the headers need: a per-item error, not a whole read.
    small = storage_file(store, "a.wav", 64 * 1024)
    with pytest.raises(Unreadable) as caught:
        attributes_of(small)
    assert caught.value.code == "asset_too_large"
    assert small.fetched <= 64 * 1024


def test_plain_urls_are_skipped_unless_the_operator_allows_them(
    place: Place,
    moto_s3: MotoS3,
) -> None:
    bucket = moto_s3.new_bucket()
    store = open_storage("s3", **_s3_fields(moto_s3, bucket))
    data, made = media.assets()["shot.png"]
    store.write("shot.png", data)
    url = store.sign("shot.png", timedelta(minutes=10))  # a URL anyone may GET
    assert url is not None and url.startswith("http://127.0.0.1")
    add_rows(place, [{"row_data": url}])
    job = probe(place)
    assert job["status"] == "completed", job
    assert (job["counts"]["skipped"], job["counts"]["probed"]) == (1, 0)
    assert attributes(place)[url] == {}

    allowed = place.settings.model_copy(update={"probe_http_urls": True})
    on = Place(place.engine, allowed, place.org_id, place.dataset_id)
    job = probe(on)
    assert job["counts"]["probed"] == 1, [e["message"] for e in place.errors(job["id"])]
    assert attributes(place)[url] == {**made, "size": len(data), "mimeType": "image/png"}

    # Allowed by address (a CIDR entry), the request goes to the address the guard checked.
    by_address = allowed.model_copy(update={"outbound_allowlist": "127.0.0.0/8"})
    job = probe(Place(place.engine, by_address, place.org_id, place.dataset_id), force=True)
    assert job["counts"]["probed"] == 1, [e["message"] for e in place.errors(job["id"])]

    # Through the guard: loopback is refused once the operator's allowlist does not name it.
    guarded = allowed.model_copy(update={"outbound_allowlist": ""})
    job = probe(Place(place.engine, guarded, place.org_id, place.dataset_id), force=True)
    assert [e["code"] for e in place.errors(job["id"])] == ["unsafe_url"]


def test_a_stopped_probe_resumes_after_its_last_chunk(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.resolve import probe_job

    assets = media.assets()
    storage_id, _folder_path = _folder(place, {n: d for n, (d, _a) in assets.items()})
    place.sync(storage_id)
    with place.engine.begin() as conn:
        job, _created = probe_job.start_probe(conn, place.org_id, place.dataset_id, None)
    stop = threading.Event()
    write = probe_job._write

    def write_then_stop(*args: Any) -> bool:
        going_on = write(*args)
        stop.set()  # the worker shuts down while the first chunk is written
        return going_on

    monkeypatch.setattr(probe_job, "_write", write_then_stop)
    probe_job.run_probe(place.engine, place.settings, job["id"], chunk_rows=2, stop=stop)
    halfway = place.job(job["id"])
    assert halfway["status"] == "running"
    assert halfway["progress"] == {"done": 2, "total": len(assets)}
    assert halfway["counts"]["probed"] == 2
    assert (
        sum("width" in a or "duration" in a or "pageCount" in a for a in attributes(place).values())
        == 2
    )

    monkeypatch.undo()
    probe_job.run_probe(place.engine, place.settings, job["id"], chunk_rows=2)
    done = place.job(job["id"])
    assert done["status"] == "completed", done
    assert done["progress"]["done"] == len(assets)
    assert (done["counts"]["probed"], done["counts"]["unchanged"]) == (len(assets), 0)


def test_what_a_row_had_is_kept_and_completed() -> None:
    had = {"mimeType": "image/x-custom", "size": 1, "camera": "left", "width": 1}
    probed = {"width": 64, "height": 48, "mimeType": "image/jpeg", "size": 677}
    assert merged(had, probed) == {
        "mimeType": "image/x-custom",
        "size": 677,
        "camera": "left",
        "width": 64,
        "height": 48,
    }
    assert merged({}, probed) == probed


def test_a_ranged_file_reads_what_the_bytes_hold_wherever_it_seeks() -> None:
    import random

    data = random.Random(7).randbytes(300_000)
    asked: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        asked.append((start, end))
        return data[start:end]

    file = RangedFile(fetch, len(data), block=1000, cached_blocks=4, budget=100 * len(data))
    moves = random.Random(8)
    for _ in range(300):
        where, size = moves.randrange(-10, len(data) + 10), moves.randrange(0, 5000)
        where = max(0, where)
        file.seek(where)
        assert file.read(size) == data[where : where + size]
        assert file.tell() == max(where, min(where + size, len(data)))
    assert file.seek(-5, 2) == len(data) - 5 and file.read() == data[-5:]
    assert file.fetched == sum(min(e, len(data)) - s for s, e in asked)
    assert all(s % 1000 == 0 for s, _e in asked)  # aligned blocks, so the cache can hit
