"""Resolving rows through the in-process API (``resolve=true``), on SQLite and PostgreSQL,
against real stores: signed S3 URLs from a moto server download the right bytes; Azurite
refuses a tampered or expired SAS; proxy and local-files URLs carry tokens that verify for
exactly their asset; a row imported from a manifest resolves by its bucket; a URI no storage
of the organization holds stays as it is, with the reason."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
import pytest
from sqlalchemy import Engine, insert, update

from tests.conftest import Tenant
from tests.storages.servers import (  # noqa: F401 - fixtures
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    Azurite,
    FakeGCS,
    MotoS3,
    azurite,
    fake_gcs,
    moto_s3,
    service_account_json,
)
from tests.test_sdk_transport import AppTransport
from tether.config import Settings
from tether.db.tables import storage_links, storages
from tether.errors import Forbidden
from tether.resolve import resolver, tokens, urls
from tether.sdk import Client
from tether.storages.registry import open_storage
from tether.sync.connections import insert_storage
from tether.sync.runner import run_sync
from tether.sync.start import start_sync

Row = dict[str, Any]


@pytest.fixture
def resolving(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's server, allowed to reach the loopback test servers and to serve local
    files from a document root of this test's own."""
    root = tmp_path / "documents"
    root.mkdir()
    monkeypatch.setattr(settings, "outbound_allowlist", "127.0.0.1")
    monkeypatch.setattr(settings, "local_files_serving_enabled", True)
    monkeypatch.setattr(settings, "local_files_document_root", root)
    return settings


def s3_fields(moto: MotoS3, bucket: str, prefix: str = "") -> Row:
    return {
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_url": moto.url,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "max_retries": 0,
    }


def add_storage(
    engine: Engine, settings: Settings, tenant: Tenant, dataset_id: int | None, type_: str,
    fields: Row, **options: Any,
) -> int:  # fmt: skip
    with engine.begin() as conn:
        return insert_storage(
            conn, settings, org_id=tenant.org_id, type_=type_, fields=fields,
            dataset_id=dataset_id, **options,
        )  # fmt: skip


def import_rows(tenant: Tenant, dataset_id: int, rows: list[Row]) -> list[Row]:
    body = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    job = tenant.import_rows(dataset_id, body, format="ndjson")
    assert job["status"] == "completed", [e["message"] for e in tenant.errors(job["id"])]
    return listed(tenant, dataset_id, resolve=False)


def listed(tenant: Tenant, dataset_id: int, resolve: bool = True) -> list[Row]:
    params: Row = {"dataset_id": dataset_id, "limit": 1000}
    if resolve:
        params["resolve"] = "true"
    r = tenant.get("/data-rows", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def resolved_one(tenant: Tenant, row_id: int) -> Row:
    r = tenant.get(f"/data-rows/{row_id}", params={"resolve": "true"})
    assert r.status_code == 200, r.text
    return r.json()["resolved"]  # type: ignore[no-any-return]


def seed_s3(moto: MotoS3, objects: dict[str, bytes]) -> str:
    bucket = moto.new_bucket()
    store = open_storage("s3", **s3_fields(moto, bucket))
    for key, data in objects.items():
        store.write(key, data)
    return bucket


def verify_proxy(settings: Settings, url: str, storage_id: int, key: str) -> int:
    """The organization a proxy URL's token was issued to, checked for its storage and key."""
    parts = urlsplit(url)
    assert parts.path == f"/api/v1/storages/{storage_id}/proxy"
    query = parse_qs(parts.query)
    assert query["key"] == [key]
    return tokens.verify(settings, query["token"][0], urls.object_grant(storage_id, key))


OBJECTS = {"a b#1.jpg": b"first \x00 bytes", "img/ü 2.png": b"second" * 100}


def test_a_synced_s3_row_gets_a_signed_url_that_downloads_its_bytes(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    moto_s3: MotoS3,  # noqa: F811
) -> None:
    bucket = seed_s3(moto_s3, OBJECTS)
    dataset = tenant.dataset()
    storage_id = add_storage(
        engine, resolving, tenant, dataset["id"], "s3", s3_fields(moto_s3, bucket),
        signed_url_ttl_minutes=7,
    )  # fmt: skip
    with engine.begin() as conn:
        job, _ = start_sync(conn, tenant.org_id, storage_id)
    run_sync(engine, resolving, job["id"])
    rows = listed(tenant, dataset["id"])
    assert len(rows) == len(OBJECTS)
    before = time.time()
    for row in rows:
        resolved = row["resolved"]
        assert row["row_data"].startswith(f"s3://{bucket}/")  # the stored URI, unchanged
        key = row["row_data"][len(f"s3://{bucket}/") :]
        url = resolved["row_data"]
        assert url.startswith(moto_s3.url) and "X-Amz-Signature=" in url
        assert httpx.get(url).content == OBJECTS[key]
        assert resolved["unresolved"] == []
        expires = time.mktime(time.strptime(resolved["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        expires -= time.timezone
        assert before + 7 * 60 - 90 < expires <= before + 7 * 60 + 5
        # the same URL again while it has life left (cached), from the single-row route too
        assert resolved_one(tenant, row["id"])["row_data"] == url
    plain = tenant.get(f"/data-rows/{rows[0]['id']}").json()
    assert "resolved" not in plain and "resolved" not in listed(tenant, dataset["id"], False)[0]


def test_a_manifest_row_resolves_by_its_bucket_and_prefix(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    moto_s3: MotoS3,  # noqa: F811
) -> None:
    """Rows imported with s3:// URIs (no sync, no link) resolve through the dataset's source
    storage of that bucket, only under its prefix; other URIs are left with the reason."""
    bucket = seed_s3(moto_s3, {"img/x.jpg": b"xx", "other/y.jpg": b"yy"})
    dataset = tenant.dataset()
    add_storage(engine, resolving, tenant, dataset["id"], "s3", s3_fields(moto_s3, bucket, "img/"))
    given = [
        f"s3://{bucket}/img/x.jpg",
        f"s3://{bucket}/other/y.jpg",  # outside the prefix
        "s3://no-such-bucket/img/x.jpg",
        "https://example.com/a.jpg?x=1",
        "ftp://example.com/a.jpg",
        "just some inline text",
    ]
    rows = import_rows(tenant, dataset["id"], [{"row_data": uri} for uri in given])
    by_uri = {row["row_data"]: resolved_one(tenant, row["id"]) for row in rows}
    signed = by_uri[given[0]]
    assert signed["unresolved"] == [] and httpx.get(signed["row_data"]).content == b"xx"
    for uri in given[1:3]:
        (problem,) = by_uri[uri]["unresolved"]
        assert problem["uri"] == uri and problem["at"] == "/row_data"
        assert "no storage of the row's dataset holds s3" in problem["reason"]
        assert by_uri[uri]["row_data"] == uri and by_uri[uri]["expires_at"] is None
    assert by_uri[given[3]] == {
        "row_data": given[3], "attachments": [], "unresolved": [], "expires_at": None
    }  # fmt: skip
    assert by_uri[given[4]]["unresolved"][0]["reason"] == "tether resolves no ftp:// URIs"
    assert by_uri[given[5]]["row_data"] == given[5] and by_uri[given[5]]["unresolved"] == []


def test_signing_off_gives_proxy_urls_for_nested_task_json_and_attachments(
    engine: Engine, resolving: Settings, tenant: Tenant
) -> None:
    """A Label Studio task with several media keys, nested, and attachments of many types:
    every URI becomes a proxy URL whose token grants exactly that storage and key. No call
    to the store is needed (nothing is signed), so the bucket need not exist."""
    dataset = tenant.dataset()
    fields = {"bucket": "media", "access_key_id": "k", "secret_access_key": "s"}
    storage_id = add_storage(
        engine, resolving, tenant, dataset["id"], "s3", fields, use_signed_urls=False
    )
    task = {
        "image": "s3://media/a b#1.jpg",
        "nested": {"audio": ["s3://media/x/1.wav", "https://cdn.example.com/2.wav"]},
        "caption": "a cat",
        "count": 3,
        "a/b~c": "gs://elsewhere/z.png",
    }
    attachments = [
        {"type": "IMAGE_OVERLAY", "value": "s3://media/overlay.png", "name": "mask"},
        {"type": "TEXT", "value": "inline words"},
        {"type": "PDF_URL", "value": "s3://media/doc.pdf"},
        {"type": "HTML", "value": "https://example.com/page.html"},
        {"type": "RAW_TEXT", "value": "s3://media/notes.txt"},
    ]
    (row,) = import_rows(tenant, dataset["id"], [{"row_data": task, "attachments": attachments}])
    resolved = resolved_one(tenant, row["id"])
    out = resolved["row_data"]
    for url, key in [
        (out["image"], "a b#1.jpg"),
        (out["nested"]["audio"][0], "x/1.wav"),
        (resolved["attachments"][0]["value"], "overlay.png"),
        (resolved["attachments"][2]["value"], "doc.pdf"),
        (resolved["attachments"][4]["value"], "notes.txt"),
    ]:
        assert verify_proxy(resolving, url, storage_id, key) == tenant.org_id
    assert out["nested"]["audio"][1] == "https://cdn.example.com/2.wav"
    assert (out["caption"], out["count"]) == ("a cat", 3)
    assert resolved["attachments"][0]["name"] == "mask"
    assert resolved["attachments"][1] == {"type": "TEXT", "value": "inline words"}
    assert resolved["attachments"][3]["value"] == "https://example.com/page.html"
    assert [(u["uri"], u["at"]) for u in resolved["unresolved"]] == [
        ("gs://elsewhere/z.png", "/row_data/a~1b~0c")
    ]
    assert out["a/b~c"] == "gs://elsewhere/z.png"
    assert row["row_data"] == task and row["attachments"] == attachments  # stored as given
    # A token for one key does not open another, nor the same key of another storage.
    token = parse_qs(urlsplit(out["image"]).query)["token"][0]
    with pytest.raises(Forbidden, match="another asset"):
        tokens.verify(resolving, token, urls.object_grant(storage_id, "x/1.wav"))
    with pytest.raises(Forbidden, match="another asset"):
        tokens.verify(resolving, token, urls.object_grant(storage_id + 1, "a b#1.jpg"))


def test_local_files_and_uploads_resolve_to_tether_urls_with_tokens(
    engine: Engine, resolving: Settings, tenant: Tenant
) -> None:
    root = resolving.local_files_document_root
    assert root is not None
    (root / "shots" / "day 1").mkdir(parents=True)
    (root / "shots" / "day 1" / "a#1.jpg").write_bytes(b"jpg")
    dataset = tenant.dataset()
    add_storage(engine, resolving, tenant, dataset["id"], "local", {"path": str(root / "shots")})
    managed = add_storage(engine, resolving, tenant, None, "local", {"managed": True, "path": "x"})
    local_uri = "/data/local-files/?d=" + "shots/day%201/a%231.jpg"
    given = [local_uri, "/data/local-files/?d=elsewhere/b.jpg", "/data/upload/7/c%20d.png"]
    rows = import_rows(tenant, dataset["id"], [{"row_data": uri} for uri in given])
    by_uri = {row["row_data"]: resolved_one(tenant, row["id"]) for row in rows}
    url = by_uri[local_uri]["row_data"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path == "/data/local-files/" and query["d"] == ["shots/day 1/a#1.jpg"]
    grant = urls.local_grant("shots/day 1/a#1.jpg")
    assert tokens.verify(resolving, query["token"][0], grant) == tenant.org_id
    (problem,) = by_uri[given[1]]["unresolved"]
    assert "no local storage of the row's dataset covers" in problem["reason"]
    upload = by_uri[given[2]]["row_data"]
    assert verify_proxy(resolving, upload, managed, "7/c d.png") == tenant.org_id


def test_another_organizations_storage_is_never_used(
    engine: Engine, resolving: Settings, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Not by its bucket, not through a link pointing at it; and another organization's row
    does not resolve at all (404)."""
    fields = {"bucket": "shared-name", "access_key_id": "k", "secret_access_key": "s"}
    theirs = other_tenant.dataset()
    their_storage = add_storage(
        engine, resolving, other_tenant, theirs["id"], "s3", fields, use_signed_urls=False
    )
    (their_row,) = import_rows(other_tenant, theirs["id"], [{"row_data": "s3://shared-name/k.jpg"}])
    assert resolved_one(other_tenant, their_row["id"])["unresolved"] == []
    ours = tenant.dataset()
    (row,) = import_rows(tenant, ours["id"], [{"row_data": "s3://shared-name/k.jpg"}])
    with engine.begin() as conn:  # a link no sync would make: our row, their storage
        conn.execute(
            insert(storage_links).values(
                storage_id=their_storage, key="k.jpg", item_index=0, data_row_id=row["id"]
            )
        )
    resolved = resolved_one(tenant, row["id"])
    assert resolved["row_data"] == "s3://shared-name/k.jpg"
    assert "no storage of the row's dataset" in resolved["unresolved"][0]["reason"]
    r = tenant.get(f"/data-rows/{their_row['id']}", params={"resolve": "true"})
    assert r.status_code == 404


def test_an_edited_storage_is_not_served_from_the_cache(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    moto_s3: MotoS3,  # noqa: F811
) -> None:
    bucket = seed_s3(moto_s3, {"k.jpg": b"k"})
    dataset = tenant.dataset()
    fields = s3_fields(moto_s3, bucket)
    del fields["max_retries"]  # as the API stores it (a PATCH checks the stored fields)
    storage_id = add_storage(
        engine, resolving, tenant, dataset["id"], "s3", fields, use_signed_urls=False
    )
    (row,) = import_rows(tenant, dataset["id"], [{"row_data": f"s3://{bucket}/k.jpg"}])
    first = resolved_one(tenant, row["id"])
    assert resolved_one(tenant, row["id"]) == first  # cached
    with engine.begin() as conn:  # a change that keeps updated_at (no route does this)
        conn.execute(
            update(storages).where(storages.c.id == storage_id).values(signed_url_ttl_minutes=30)
        )
    assert resolved_one(tenant, row["id"]) == first  # same updated_at: the cached URL
    r = tenant.patch(f"/storages/{storage_id}", json={"signed_url_ttl_minutes": 30})
    assert r.status_code == 200, r.text
    second = resolved_one(tenant, row["id"])
    assert second["row_data"] != first["row_data"] and second["expires_at"] > first["expires_at"]


def _touch(engine: Engine, storage_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(storages).where(storages.c.id == storage_id).values(updated_at=datetime.now(UTC))
        )


def _azure_storage(
    engine: Engine,
    settings: Settings,
    tenant: Tenant,
    azurite: Azurite,  # noqa: F811
    **options: Any,
) -> tuple[int, str]:
    from azure.storage.blob import BlobServiceClient

    raw = BlobServiceClient(
        azurite.url, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    )
    container = raw.create_container(f"t{uuid.uuid4().hex[:12]}")
    container.upload_blob("img/a b#1.jpg", b"azure bytes")
    dataset = tenant.dataset()
    fields = {
        "container": container.container_name, "account_name": AZURITE_ACCOUNT,
        "account_key": AZURITE_KEY, "endpoint_url": azurite.url, "max_retries": 0,
    }  # fmt: skip
    add_storage(engine, settings, tenant, dataset["id"], "azure_blob", fields, **options)
    uri = f"azure-blob://{container.container_name}/img/a b#1.jpg"
    (row,) = import_rows(tenant, dataset["id"], [{"row_data": uri}])
    return row["id"], uri


def test_azurite_takes_the_signed_url_and_refuses_it_tampered(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    azurite: Azurite,  # noqa: F811
) -> None:
    row_id, _ = _azure_storage(engine, resolving, tenant, azurite)
    url = resolved_one(tenant, row_id)["row_data"]
    assert httpx.get(url).content == b"azure bytes"
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["se"] = query["se"].replace(query["se"][:4], str(int(query["se"][:4]) + 1))
    tampered = urlunsplit(parts._replace(query=urlencode(query)))  # a longer life
    assert httpx.get(tampered).status_code == 403


def test_azurite_refuses_an_expired_signed_url(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    azurite: Azurite,  # noqa: F811
) -> None:
    """A TTL of 0 (no form allows it; stored directly) makes a URL that expires at once."""
    row_id, _ = _azure_storage(engine, resolving, tenant, azurite, signed_url_ttl_minutes=0)
    url = resolved_one(tenant, row_id)["row_data"]
    assert "sig=" in url
    time.sleep(1.2)
    assert httpx.get(url).status_code == 403


def test_the_sdk_exposes_resolved(
    engine: Engine, resolving: Settings, tenant: Tenant, http: Any
) -> None:
    dataset = tenant.dataset()
    fields = {"bucket": "media", "access_key_id": "k", "secret_access_key": "s"}
    storage_id = add_storage(
        engine, resolving, tenant, dataset["id"], "s3", fields, use_signed_urls=False
    )
    (row,) = import_rows(tenant, dataset["id"], [{"row_data": "s3://media/k.jpg"}])
    with Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)) as sdk:
        one = sdk.get_data_row(row["id"], resolve=True)
        assert one.resolved is not None
        assert verify_proxy(resolving, str(one.resolved.row_data), storage_id, "k.jpg")
        assert sdk.get_data_row(row["id"]).resolved is None
        (listed_row,) = sdk.get_dataset(dataset["id"]).data_rows(resolve=True)
        assert listed_row.resolved is not None and listed_row.resolved.unresolved == []
        assert listed_row.resolved.row_data == one.resolved.row_data  # cached


def test_a_gcs_row_gets_a_v4_signed_url_that_downloads_its_bytes(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    fake_gcs: FakeGCS,  # noqa: F811
) -> None:
    bucket = fake_gcs.new_bucket()
    fake_gcs.put(bucket, "clips/a b.mp4", b"gcs bytes")
    dataset = tenant.dataset()
    fields = {
        "bucket": bucket, "endpoint_url": fake_gcs.url,
        "service_account_json": service_account_json(), "max_retries": 0,
    }  # fmt: skip
    add_storage(engine, resolving, tenant, dataset["id"], "gcs", fields)
    (row,) = import_rows(tenant, dataset["id"], [{"row_data": f"gs://{bucket}/clips/a b.mp4"}])
    url = resolved_one(tenant, row["id"])["row_data"]
    assert "X-Goog-Signature=" in url and httpx.get(url).content == b"gcs bytes"


def test_redis_uris_resolve_through_the_proxy_under_the_storages_path(
    engine: Engine, resolving: Settings, tenant: Tenant
) -> None:
    """Redis cannot sign: its task values are streamed by tether, whatever use_signed_urls
    says (no connection is made to resolve them)."""
    dataset = tenant.dataset()
    fields = {"host": "127.0.0.1", "port": 6379, "db": 4, "path": "tasks/"}
    storage_id = add_storage(engine, resolving, tenant, dataset["id"], "redis", fields)
    given = ["redis://4/tasks/a%20b", "redis://4/other/c", "redis://5/tasks/a%20b"]
    rows = import_rows(
        tenant, dataset["id"], [{"row_data": uri, "media_type": "TEXT"} for uri in given]
    )
    by_uri = {row["row_data"]: resolved_one(tenant, row["id"]) for row in rows}
    assert verify_proxy(resolving, by_uri[given[0]]["row_data"], storage_id, "tasks/a b")
    for uri in given[1:]:
        assert by_uri[uri]["row_data"] == uri and len(by_uri[uri]["unresolved"]) == 1


def test_a_backend_is_opened_once_per_storage_version(
    engine: Engine,
    resolving: Settings,
    tenant: Tenant,
    moto_s3: MotoS3,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opening decrypts secrets (and may assume a role): the service keeps opened backends
    per (storage, updated_at); the real open_backend is counted, not replaced."""
    bucket = seed_s3(moto_s3, OBJECTS)
    dataset = tenant.dataset()
    storage_id = add_storage(
        engine, resolving, tenant, dataset["id"], "s3", s3_fields(moto_s3, bucket)
    )
    rows = import_rows(tenant, dataset["id"], [{"row_data": f"s3://{bucket}/{k}"} for k in OBJECTS])
    opened: list[int] = []
    real = resolver.open_backend

    def counting(settings: Settings, record: Any) -> Any:
        opened.append(record.id)
        return real(settings, record)

    monkeypatch.setattr(resolver, "open_backend", counting)
    service = resolver.Resolver(resolving)
    for _ in range(3):
        service._urls.clear()  # sign again each time: only the backend is reused
        with engine.connect() as conn:
            answers = service.resolve(conn, tenant.org_id, rows)
        for row, answer in zip(rows, answers, strict=True):
            key = row["row_data"].split("/", 3)[3]
            assert httpx.get(answer["row_data"]).content == OBJECTS[key]
    assert opened == [storage_id]
    _touch(engine, storage_id)
    with engine.connect() as conn:
        service.resolve(conn, tenant.org_id, rows)
    assert opened == [storage_id, storage_id]


def test_a_storage_that_cannot_be_opened_leaves_its_uris_with_the_reason(
    engine: Engine, resolving: Settings, tenant: Tenant
) -> None:
    """An endpoint the outbound-URL guard refuses (not on the allowlist): signing is never
    tried, each URI says why, and the page still answers."""
    dataset = tenant.dataset()
    fields = {
        "bucket": "media", "endpoint_url": "http://10.1.2.3:9000", **{"access_key_id": "k"},
        "secret_access_key": "s",
    }  # fmt: skip
    storage_id = add_storage(engine, resolving, tenant, dataset["id"], "s3", fields)
    import_rows(tenant, dataset["id"], [{"row_data": f"s3://media/{i}.jpg"} for i in range(3)])
    rows = listed(tenant, dataset["id"])
    assert len(rows) == 3
    for row in rows:
        (problem,) = row["resolved"]["unresolved"]
        assert problem["uri"] == row["row_data"] == row["resolved"]["row_data"]
        assert problem["reason"].startswith(f"storage {storage_id} cannot be opened: endpoint_url")


def test_row_data_nested_past_the_walks_depth_is_answered_as_is(
    engine: Engine, resolving: Settings, tenant: Tenant
) -> None:
    """Stored JSON nests up to orjson's limit (254): the walk stops at MAX_DEPTH, so a row
    never costs its whole depth in stack frames."""
    dataset = tenant.dataset()
    fields = {"bucket": "media", "access_key_id": "k", "secret_access_key": "s"}
    add_storage(engine, resolving, tenant, dataset["id"], "s3", fields, use_signed_urls=False)
    deep: Any = "s3://media/deep.jpg"
    for _ in range(200):
        deep = [deep]
    task = {"image": "s3://media/top.jpg", "deep": deep}
    (row,) = import_rows(tenant, dataset["id"], [{"row_data": task, "media_type": "IMAGE"}])
    resolved = resolved_one(tenant, row["id"])
    assert resolved["row_data"]["image"].startswith("/api/v1/storages/")
    assert resolved["row_data"]["deep"] == deep
