"""Exports to every backend on its real server: S3 (moto), Azure Blob (Azurite), Redis (a
private redis-server), and GCS (fake-gcs-server), each object read back with a client of
the store's own (boto3, azure-storage-blob, redis-py), never tether's; and the target check
naming a missing write or delete permission (moto with IAM enforced).

GCS: fake-gcs-server takes no upload of obstore's (the XML API's ``PUT /<bucket>/<key>``,
which the emulator accepts only as a signed-URL upload or with an ``uploadType``): the
check's refusal and an export's failure are tested here, a successful GCS write cannot be.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from tests.projects.targets_setup import Api, Labeled, counts, export, labeled, make_api, target
from tests.storages import servers
from tests.storages.conftest import start_redis, stop
from tests.storages.servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, FakeGCS, MotoS3
from tests.storages.test_connections import iam_user
from tether.sync.connections import insert_storage

moto_s3, azurite, fake_gcs = servers.moto_s3, servers.azurite, servers.fake_gcs


@pytest.fixture(scope="module")
def api(settings: Any, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from make_api(settings, engine, tmp_path_factory)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_redis(tmp_path_factory.mktemp("targets-redis"))
    yield port
    stop(proc)


def s3_body(moto: MotoS3, bucket: str, project_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "s3",
        "project_id": project_id,
        "bucket": bucket,
        "prefix": "exports/",
        "endpoint_url": moto.url,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        **extra,
    }


def _round_trip(done: Labeled, tenant: Any, storage_id: int, read: Any, exists: Any) -> None:
    """Export, change one annotation and delete another, export again: the store holds
    exactly the annotations, each at its version, and the deleted one's object is gone."""
    first = export(tenant, storage_id)
    assert counts(first) == {"written": 3, "unchanged": 0, "deleted": 0, "failed": 0}, first
    for annotation_id in done.annotations:
        body = orjson.loads(read(str(annotation_id)))
        assert body["id"] == annotation_id and body["task"]["project"] == done.project_id
        assert body["completed_by"]["email"] == tenant.email
    edited, gone = done.annotations[0], done.annotations[1]
    done.edit(edited)
    done.remove(gone)
    second = export(tenant, storage_id)
    assert counts(second) == {"written": 1, "unchanged": 1, "deleted": 1, "failed": 0}, second
    assert orjson.loads(read(str(edited)))["result"][0]["id"] == "edited"
    assert not exists(str(gone))
    assert done.links(storage_id) == done.versions()


def test_s3(api: Api, moto_s3: MotoS3) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 3)
    bucket = moto_s3.new_bucket()
    raw = moto_s3.client()
    made = target(admin, s3_body(moto_s3, bucket, done.project_id, can_delete_objects=True))
    assert made["check"]["ok"] and made["secret_fields_set"] == [
        "access_key_id",
        "secret_access_key",
    ]
    assert raw.list_objects_v2(Bucket=bucket).get("KeyCount") == 0, "the probe was deleted"

    def read(name: str) -> bytes:
        return bytes(raw.get_object(Bucket=bucket, Key=f"exports/{name}")["Body"].read())

    def exists(name: str) -> bool:
        found = raw.list_objects_v2(Bucket=bucket, Prefix=f"exports/{name}")
        return any(o["Key"] == f"exports/{name}" for o in found.get("Contents", []))

    _round_trip(done, admin, made["id"], read, exists)
    head = raw.head_object(Bucket=bucket, Key=f"exports/{done.annotations[0]}")
    assert head["ContentType"] == "application/json"


def test_s3_check_names_the_missing_permission(api: Api, moto_s3: MotoS3) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 1)
    bucket = moto_s3.new_bucket()
    list_only = iam_user(moto_s3, ["s3:ListBucket"])
    write_only = iam_user(moto_s3, ["s3:PutObject"])
    with moto_s3.auth_enforced():
        body = s3_body(moto_s3, bucket, done.project_id)
        body["access_key_id"], body["secret_access_key"] = list_only
        r = admin.post("/storages", json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "permission_denied" and "s3:PutObject" in error["message"]

        body["access_key_id"], body["secret_access_key"] = write_only
        r = admin.post("/storages", json={**body, "can_delete_objects": True})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "permission_denied" and "s3:DeleteObject" in error["message"]

        made = target(admin, body)  # without deletes, a refused delete is a warning
        [warning] = made["check"]["warnings"]
        assert "s3:DeleteObject" in warning["message"] and "stays" in warning["message"]
    listed = admin.get("/storages", params={"project_id": done.project_id}).json()["items"]
    assert [s["id"] for s in listed] == [made["id"]]
    r = admin.post("/storages", json=s3_body(moto_s3, "no-such-bucket-x", done.project_id))
    assert r.json()["error"]["code"] == "bucket_not_found", r.text


def test_azure_blob(api: Api, azurite: Azurite) -> None:
    from azure.storage.blob import BlobServiceClient

    admin = api.tenant()
    done = labeled(admin, api.engine, 3)
    raw = BlobServiceClient(
        azurite.url, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    )
    container = raw.create_container(f"t{uuid.uuid4().hex[:12]}")
    body = {
        "type": "azure_blob",
        "project_id": done.project_id,
        "container": container.container_name,
        "prefix": "ls",
        "account_name": AZURITE_ACCOUNT,
        "account_key": AZURITE_KEY,
        "endpoint_url": azurite.url,
        "can_delete_objects": True,
    }
    made = target(admin, body)
    assert made["check"]["ok"], made

    def read(name: str) -> bytes:
        return bytes(container.download_blob(f"ls/{name}").readall())

    def exists(name: str) -> bool:
        return any(b.name == f"ls/{name}" for b in container.list_blobs(name_starts_with="ls/"))

    _round_trip(done, admin, made["id"], read, exists)


def test_redis(api: Api, redis_port: int) -> None:
    import redis

    admin = api.tenant()
    done = labeled(admin, api.engine, 3)
    raw = redis.Redis(port=redis_port, db=2)
    raw.flushdb()  # the other database's run of this test wrote here
    body = {
        "type": "redis",
        "project_id": done.project_id,
        "host": "127.0.0.1",
        "port": redis_port,
        "db": 2,
        "path": "ann",
        "can_delete_objects": True,
    }
    made = target(admin, body)
    assert made["check"]["ok"], made
    assert raw.keys("*") == [], "the probe was deleted"

    def read(name: str) -> bytes:
        value = raw.get(f"ann/{name}")
        assert value is not None, name
        return bytes(value)

    def exists(name: str) -> bool:
        return bool(raw.exists(f"ann/{name}"))

    _round_trip(done, admin, made["id"], read, exists)
    raw.close()


def test_gcs_writes_are_refused_by_the_emulator(api: Api, fake_gcs: FakeGCS) -> None:
    """What can be tested of GCS here: the write goes out (tether -> obstore -> the
    emulator) and the emulator's refusal comes back in tether's words, both in the check
    (nothing saved) and in an export (the job fails naming it)."""
    from tests.storages.servers import service_account_json

    admin = api.tenant()
    done = labeled(admin, api.engine, 2)
    bucket = fake_gcs.new_bucket()
    fields = {
        "bucket": bucket,
        "prefix": "out",
        "endpoint_url": fake_gcs.url,
        "service_account_json": service_account_json(),
    }
    r = admin.post("/storages", json={"type": "gcs", "project_id": done.project_id, **fields})
    assert r.status_code == 422, r.text
    assert "invalid uploadType" in r.json()["error"]["message"], r.text
    assert admin.get("/storages", params={"project_id": done.project_id}).json()["items"] == []

    settings = api.app.state.settings
    with api.engine.begin() as conn:  # stored without the check, to run an export
        storage_id = insert_storage(
            conn,
            settings,
            org_id=admin.org_id,
            type_="gcs",
            fields=fields,
            project_id=done.project_id,
            role="target",
        )
    job = export(admin, storage_id)
    assert job["status"] == "failed", job
    assert "refused every write" in job["message"] and "invalid uploadType" in job["message"]
    assert done.links(storage_id) == {}
