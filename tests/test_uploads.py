"""Uploading files into storage (issue 14, section 4), in-process on both databases: the
managed storage, the object API (streamed, size-limited, all or nothing, resumable), who may
upload where, and the SDK's ``upload_file`` / ``upload_files`` / ``create_data_rows`` with
local files. S3 on a moto server process; the managed storage in the data dir."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.conftest import Tenant
from tests.storages.servers import MotoS3, moto_s3  # noqa: F401  (fixture)
from tests.test_sdk_transport import AppTransport
from tether import Client, ConflictError, NotFoundError, TooLargeError
from tether.config import Settings
from tether.db.tables import storages
from tether.errors import Invalid
from tether.storages.local import ManagedLocalStorage
from tether.sync.connections import get_record, insert_storage
from tether.uploads import destination, objects

LIMIT = 64 * 1024


@pytest.fixture
def small_limit(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(settings, "max_asset_bytes", LIMIT)
    return LIMIT


@pytest.fixture
def sdk(tenant: Tenant, http: Any) -> Iterator[Client]:
    with Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)) as c:
        yield c


def dest(tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = tenant.post("/uploads/destination", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def put(tenant: Tenant, storage_id: int, key: str, data: bytes, **params: Any) -> Any:
    return tenant.http.put(
        f"/api/v1/storages/{storage_id}/objects",
        params={"key": key, **params},
        content=data,
        headers=tenant.headers,
    )


def managed_file(settings: Settings, org_id: int, key: str) -> Path:
    return settings.data_dir / "assets" / f"org-{org_id}" / key


def memory_storage(engine: Engine, settings: Settings, org_id: int, **options: Any) -> int:
    fields = {"bucket": f"b-{uuid.uuid4().hex[:8]}"} | options.pop("fields", {})
    with engine.begin() as conn:
        return insert_storage(
            conn, settings, org_id=org_id, type_="memory", fields=fields, **options
        )


# --- the managed storage ----------------------------------------------------------------------


def test_each_organization_gets_one_managed_storage_made_once(
    tenant: Tenant, other_tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    ds = tenant.dataset()
    first = dest(tenant, dataset=ds["id"])
    assert first == {
        "storage_id": first["storage_id"],
        "type": "local",
        "managed": True,
        "dataset_id": ds["id"],
        "key_prefix": f"{ds['id']}/",
        "max_asset_bytes": settings.max_asset_bytes,
    }
    assert dest(tenant, dataset=ds["name"])["storage_id"] == first["storage_id"]
    assert dest(tenant)["key_prefix"] == "files/"  # no dataset
    assert dest(tenant)["storage_id"] == first["storage_id"]
    theirs = dest(other_tenant)
    assert theirs["storage_id"] != first["storage_id"]
    with engine.connect() as conn:
        mine = conn.execute(select(storages).where(storages.c.org_id == tenant.org_id)).all()
        record = get_record(conn, settings, tenant.org_id, first["storage_id"])
    assert len(mine) == 1
    assert (record.type, record.role, record.dataset_id) == ("local", "source", None)
    assert record.config["managed"] is True and record.use_signed_urls is False


def test_many_first_uploads_at_once_make_one_managed_storage(
    tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    made: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def first_upload() -> None:
        start.wait()
        try:
            with engine.begin() as conn:
                chosen = destination.choose(conn, settings, tenant.org_id, tenant.user_id)
            made.append(chosen.record.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_upload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(made) == 4 and len(set(made)) == 1
    with engine.connect() as conn:
        count = len(conn.execute(select(storages).where(storages.c.org_id == tenant.org_id)).all())
    assert count == 1


def test_managed_uploads_can_be_turned_off(
    tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "managed_uploads", False)
    r = tenant.post("/uploads/destination", json={})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_upload_destination"


def test_a_managed_record_cannot_point_elsewhere(
    tenant: Tenant, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """A record that claims to be managed opens the organization's own folder, whatever path
    it names (so it cannot be used to reach another folder without local serving)."""
    with engine.begin() as conn:
        sid = insert_storage(
            conn,
            settings,
            org_id=tenant.org_id,
            type_="local",
            fields={"managed": True, "path": str(tmp_path)},
        )
        record = get_record(conn, settings, tenant.org_id, sid)
    from tether.sync.connections import open_backend

    backend = open_backend(settings, record)
    assert isinstance(backend, ManagedLocalStorage)
    assert Path(backend.root) == managed_file(settings, tenant.org_id, "").resolve()


# --- one object ---------------------------------------------------------------------------------

ODD_KEYS = [
    "a b.jpg",
    "ü/çø 文件.png",
    "hash#1.jpg",
    "q?x=1&y.png",
    "pct%20.jpg",
    "🙂.gif",
    "+.jpg",
]


@pytest.mark.parametrize("name", ODD_KEYS)
def test_put_stores_the_bytes_and_names_them_by_uri(
    tenant: Tenant, settings: Settings, name: str
) -> None:
    ds = tenant.dataset()
    where = dest(tenant, dataset=ds["id"])
    key = where["key_prefix"] + name
    data = bytes(range(256)) * 40
    r = put(tenant, where["storage_id"], key, data, overwrite=False)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["key"], body["size"], body["created"]) == (key, len(data), True)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert managed_file(settings, tenant.org_id, key).read_bytes() == data
    assert ManagedLocalStorage.key_of(body["uri"]) == key
    assert body["uri"].startswith("/data/upload/") and " " not in body["uri"]
    got = tenant.get(
        f"/storages/{where['storage_id']}/objects", params={"key": key, "sha256": True}
    )
    assert got.status_code == 200
    assert got.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert got.json()["uri"] == body["uri"]


def test_same_size_is_already_there_other_size_conflicts_overwrite_replaces(
    tenant: Tenant, settings: Settings
) -> None:
    where = dest(tenant)
    sid, key = where["storage_id"], where["key_prefix"] + "x.jpg"
    assert put(tenant, sid, key, b"12345").status_code == 201
    again = put(tenant, sid, key, b"12345")
    assert again.status_code == 200 and again.json()["created"] is False
    clash = put(tenant, sid, key, b"123456")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "object_exists"
    assert managed_file(settings, tenant.org_id, key).read_bytes() == b"12345"
    replaced = put(tenant, sid, key, b"123456", overwrite=True)
    assert replaced.status_code == 201 and replaced.json()["size"] == 6
    assert managed_file(settings, tenant.org_id, key).read_bytes() == b"123456"


def test_a_file_over_the_limit_is_413_and_stores_nothing(
    tenant: Tenant, settings: Settings, small_limit: int
) -> None:
    where = dest(tenant)
    key = where["key_prefix"] + "big.bin"
    r = put(tenant, where["storage_id"], key, b"x" * (small_limit + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert not managed_file(settings, tenant.org_id, key).exists()
    assert put(tenant, where["storage_id"], key, b"x" * small_limit).status_code == 201


@pytest.mark.parametrize("sent", [b"short", b"much too long for it"])
def test_a_body_unlike_its_announced_size_leaves_no_object(
    tenant: Tenant, engine: Engine, settings: Settings, sent: bytes
) -> None:
    with engine.begin() as conn:
        record = destination.choose(conn, settings, tenant.org_id, tenant.user_id).record
    with pytest.raises(Invalid) as caught:
        objects.put(settings, record, "files/part.bin", iter([sent[:3], sent[3:]]), 10)
    assert caught.value.code == "length_mismatch"
    folder = managed_file(settings, tenant.org_id, "files")
    assert not (folder / "part.bin").exists()
    assert not list(folder.glob(".tether-*.part")) if folder.exists() else True


@pytest.mark.parametrize(
    "key",
    ["../escape.jpg", "files/../../x.jpg", "/abs.jpg", "a//b.jpg", "a\\b.jpg", "dir/", "."],
)
def test_unsafe_keys_are_refused(tenant: Tenant, settings: Settings, key: str) -> None:
    where = dest(tenant)
    r = put(tenant, where["storage_id"], key, b"data")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_object_key", r.text
    assert not (settings.data_dir / "assets" / "escape.jpg").exists()
    assert not (settings.data_dir / "x.jpg").exists()


def test_nul_in_a_key_is_refused(tenant: Tenant) -> None:
    where = dest(tenant)
    assert put(tenant, where["storage_id"], "files/a\x00.jpg", b"d").status_code == 422


def test_another_organizations_storage_is_404(
    tenant: Tenant, other_tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    theirs = dest(other_tenant)["storage_id"]
    their_memory = memory_storage(engine, settings, other_tenant.org_id)
    for sid in (theirs, their_memory, 999_999):
        assert put(tenant, sid, "files/a.jpg", b"x").status_code == 404
        r = tenant.get(f"/storages/{sid}/objects", params={"key": "files/a.jpg"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert tenant.post("/uploads/destination", json={"storage_id": sid}).status_code == 404
    assert not managed_file(settings, other_tenant.org_id, "files/a.jpg").exists()


def test_a_member_uploads_too(member: Tenant, settings: Settings) -> None:
    where = dest(member)
    assert put(member, where["storage_id"], "files/m.jpg", b"m").status_code == 201


def test_target_storages_are_404_redis_and_json_task_storages_refused(
    tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    target = memory_storage(engine, settings, tenant.org_id, role="target")
    assert put(tenant, target, "a.jpg", b"x").status_code == 404
    tasks = memory_storage(engine, settings, tenant.org_id, treat_every_object_as_source_file=False)
    r = put(tenant, tasks, "a.jpg", b"x")
    assert r.status_code == 422 and "tasks JSON" in r.json()["error"]["message"]
    with engine.begin() as conn:
        redis_id = insert_storage(
            conn, settings, org_id=tenant.org_id, type_="redis", fields={"port": 1}
        )
    r = put(tenant, redis_id, "a.jpg", b"x")
    assert r.status_code == 422 and r.json()["error"]["code"] == "uploads_not_supported"


def test_keys_must_fit_the_storage_prefix_regex_and_recursion(
    tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    sid = memory_storage(
        engine,
        settings,
        tenant.org_id,
        fields={"prefix": "img"},
        regex_filter=r".*\.(jpg|png)$",
        recursive=False,
    )
    assert put(tenant, sid, "img/a.jpg", b"1").status_code == 201
    for key, why in [
        ("other/a.jpg", "prefix"),
        ("img/a.txt", "regex_filter"),
        ("img/sub/a.jpg", "not recursive"),
    ]:
        r = put(tenant, sid, key, b"1")
        assert r.status_code == 422 and why in r.json()["error"]["message"], (key, r.text)


# --- the dataset's own storage ------------------------------------------------------------------


def test_the_datasets_one_source_storage_is_the_destination(
    tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    ds, other = tenant.dataset(), tenant.dataset()
    sid = memory_storage(
        engine, settings, tenant.org_id, dataset_id=ds["id"], fields={"prefix": "up"}
    )
    chosen = dest(tenant, dataset=ds["id"])
    assert (chosen["storage_id"], chosen["key_prefix"], chosen["managed"]) == (sid, "up/", False)
    assert dest(tenant, dataset=ds["id"], storage_id=sid)["storage_id"] == sid
    r = tenant.post("/uploads/destination", json={"dataset": other["id"], "storage_id": sid})
    assert r.status_code == 422 and "another dataset" in r.json()["error"]["message"]
    second = memory_storage(engine, settings, tenant.org_id, dataset_id=ds["id"])
    r = tenant.post("/uploads/destination", json={"dataset": ds["id"]})
    assert r.status_code == 422 and str(second) in r.json()["error"]["message"]
    assert dest(tenant, dataset=ds["id"], storage_id=second)["key_prefix"] == ""


# --- SDK ------------------------------------------------------------------------------------------


def files_in(tmp_path: Path) -> dict[str, Path]:
    made = {
        "a.jpg": b"a" * 100,
        "sub/b ü#.png": b"b" * 200,
        "sub/deeper/c.mp4": b"c" * 300,
        "notes.txt": b"hello",
    }
    out = {}
    for name, data in made.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[name] = path
    return out


def test_upload_file_returns_the_uri_and_skips_what_is_there(
    sdk: Client, tenant: Tenant, settings: Settings, tmp_path: Path
) -> None:
    path = files_in(tmp_path)["a.jpg"]
    uri = sdk.upload_file(path)
    assert uri == "/data/upload/files/a.jpg"
    stored = managed_file(settings, tenant.org_id, "files/a.jpg")
    assert stored.read_bytes() == path.read_bytes()
    before = stored.stat().st_mtime_ns
    assert sdk.upload_file(str(path)) == uri  # same bytes: not sent again
    assert stored.stat().st_mtime_ns == before
    assert sdk.upload_file(path, key="dir/renamed.jpg") == "/data/upload/files/dir/renamed.jpg"
    path.write_bytes(b"z" * 100)  # same size, other bytes: told apart by the SHA-256
    with pytest.raises(ConflictError) as caught:
        sdk.upload_file(path)
    assert caught.value.code == "object_exists"
    assert sdk.upload_file(path, overwrite=True) == uri
    assert stored.read_bytes() == b"z" * 100


def test_upload_file_too_large_and_missing(sdk: Client, small_limit: int, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (small_limit + 1))
    with pytest.raises(TooLargeError):
        sdk.upload_file(big)
    with pytest.raises(FileNotFoundError):
        sdk.upload_file(tmp_path / "nope.jpg")
    with pytest.raises(NotFoundError):
        sdk.upload_file(big, storage=999_999)


def test_create_data_rows_uploads_files_and_reports_each_failure(
    sdk: Client, tenant: Tenant, settings: Settings, tmp_path: Path, small_limit: int
) -> None:
    files = files_in(tmp_path)
    big = tmp_path / "in" / "big.jpg"
    big.write_bytes(b"x" * (small_limit + 1))
    ds = sdk.create_dataset(f"up-{uuid.uuid4().hex[:8]}")
    items: list[Any] = [
        str(files["a.jpg"]),  # 0
        big,  # 1: too large
        files["sub/b ü#.png"],  # 2
        str(tmp_path / "gone.jpg"),  # 3: no such file
        {"row_data": "s3://bucket/k.jpg", "global_key": f"k-{ds.id}"},  # 4: a plain row
        {"row_data": files["sub/deeper/c.mp4"], "global_key": f"video-{ds.id}"},  # 5
        {"row_data": "s3://bucket/bad.jpg", "media_type": "NOPE"},  # 6: refused by the server
        "https://example.com/x.png",  # 7: a URI string, as before
    ]
    job = ds.create_data_rows(items).wait_till_done(timeout=60)
    assert job.status == "completed_with_errors"
    assert job.counts["created"] == 5 and job.counts.failed == 3
    errors = {e.index: e.code for e in job.errors}
    assert errors == {1: "too_large", 3: "file_not_found", 6: errors[6]}
    assert [e.index for e in job.upload_errors] == [1, 3]
    rows = {r.external_id or r.global_key: r for r in ds.data_rows()}
    a = rows[str(files["a.jpg"])]
    assert a.row_data == a.global_key == f"/data/upload/{ds.id}/a.jpg"
    assert a.media_type == "IMAGE"
    b = rows[str(files["sub/b ü#.png"])]
    assert ManagedLocalStorage.key_of(str(b.row_data)) == f"{ds.id}/b ü#.png"
    video = rows[str(files["sub/deeper/c.mp4"])]
    assert video.global_key == f"video-{ds.id}"  # the dict's own key kept
    assert video.media_type == "VIDEO" and str(video.row_data).endswith("/c.mp4")
    assert rows[f"k-{ds.id}"].row_data == "s3://bucket/k.jpg"
    assert any(r.row_data == "https://example.com/x.png" for r in rows.values())
    assert managed_file(settings, tenant.org_id, f"{ds.id}/a.jpg").read_bytes() == b"a" * 100
    assert not managed_file(settings, tenant.org_id, f"{ds.id}/big.jpg").exists()


def test_a_single_path_is_still_a_manifest_import(sdk: Client, tmp_path: Path) -> None:
    manifest = tmp_path / "rows.json"
    manifest.write_text('[{"row_data": "s3://b/1.jpg"}, {"row_data": "s3://b/2.jpg"}]')
    ds = sdk.create_dataset(f"m-{uuid.uuid4().hex[:8]}")
    for given in (str(manifest), manifest):
        job = ds.create_data_rows(given).wait_till_done(timeout=60)
        assert job.status == "completed" and job.counts["created"] == 2
    assert ds.count_rows() == 4
    assert {r.row_data for r in ds.data_rows()} == {"s3://b/1.jpg", "s3://b/2.jpg"}


def test_every_file_failing_raises_with_the_errors(sdk: Client, tmp_path: Path) -> None:
    ds = sdk.create_dataset(f"f-{uuid.uuid4().hex[:8]}")
    from tether import TetherAPIError

    with pytest.raises(TetherAPIError) as caught:
        ds.create_data_rows([tmp_path / "a.jpg", tmp_path / "b.jpg"])
    assert caught.value.code == "nothing_uploaded" and len(caught.value.details) == 2
    assert ds.count_rows() == 0


def test_upload_files_a_file_vanishing_meanwhile_is_one_error(
    sdk: Client, settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    files = files_in(tmp_path)
    ds = sdk.create_dataset(f"v-{uuid.uuid4().hex[:8]}")
    doomed = files["sub/deeper/c.mp4"]

    def vanish(_n: int) -> None:
        doomed.unlink(missing_ok=True)

    results = list(
        ds.upload_files(
            [(files["a.jpg"], "a.jpg"), (doomed, "sub/deeper/c.mp4"), files["notes.txt"]],
            on_bytes=vanish,
        )
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].code == "file_not_found"
    assert [r.key for r in results if r.ok] == [f"{ds.id}/a.jpg", f"{ds.id}/notes.txt"]
    assert not managed_file(settings, tenant.org_id, f"{ds.id}/sub/deeper/c.mp4").exists()
    again = list(ds.upload_files([(files["a.jpg"], "a.jpg")]))
    assert again[0].ok and again[0].created is False


# --- S3 on moto -----------------------------------------------------------------------------------


@pytest.fixture
def s3_dataset(
    moto_s3: MotoS3,  # noqa: F811
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict[str, Any], int, str]:
    monkeypatch.setattr(settings, "outbound_allowlist", "127.0.0.1")  # moto is on loopback
    bucket = moto_s3.new_bucket()
    ds = tenant.dataset()
    fields = {
        "bucket": bucket,
        "prefix": "uploads",
        "endpoint_url": moto_s3.url,
        "access_key_id": moto_s3.access_key_id,
        "secret_access_key": moto_s3.secret_access_key,
        "max_retries": 0,
    }
    with engine.begin() as conn:
        sid = insert_storage(
            conn, settings, org_id=tenant.org_id, type_="s3", fields=fields, dataset_id=ds["id"]
        )
    return ds, sid, bucket


def test_files_go_to_the_datasets_s3_storage_and_a_rerun_skips_them(
    s3_dataset: tuple[dict[str, Any], int, str],
    moto_s3: MotoS3,  # noqa: F811
    sdk: Client,
    tmp_path: Path,
) -> None:
    ds_info, sid, bucket = s3_dataset
    files = files_in(tmp_path)
    ds = sdk.get_dataset(ds_info["id"])
    single = sdk.upload_file(files["a.jpg"], storage=sid, key="one/a.jpg")
    assert single == f"s3://{bucket}/uploads/one/a.jpg"
    pairs = [(path, name) for name, path in files.items()]
    first = list(ds.upload_files(pairs))
    assert all(r.ok and r.created for r in first), first
    assert {r.uri for r in first} == {f"s3://{bucket}/uploads/{name}" for name in files}
    raw = moto_s3.client()
    for name, path in files.items():
        body = raw.get_object(Bucket=bucket, Key=f"uploads/{name}")["Body"].read()
        assert body == path.read_bytes()
    again = list(ds.upload_files(pairs))
    assert [r.created for r in again] == [False] * len(files)
    files["a.jpg"].write_bytes(b"q" * 100)  # same size: the ETag (MD5) tells them apart
    changed = list(ds.upload_files([(files["a.jpg"], "a.jpg")]))
    assert changed[0].code == "object_exists"
    job = ds.create_data_rows([files["notes.txt"]]).wait_till_done(timeout=60)
    assert job.status == "completed"
    (row,) = ds.data_rows()
    assert row.row_data == row.global_key == f"s3://{bucket}/uploads/notes.txt"
    assert row.media_type == "TEXT"
    # A sync of the storage finds every object (the files and one/a.jpg); notes.txt, whose
    # row the upload made, keeps that one row.
    synced = sdk.sync_storage(sid).wait_till_done(timeout=60)
    assert synced.status == "completed", synced
    assert (synced.counts["created"], synced.counts["unchanged"]) == (len(files), 1)
    assert sum(1 for r in ds.data_rows() if r.row_data.endswith("/notes.txt")) == 1
