"""Storages through the SDK and the ``tether storage`` / ``tether org`` commands, against a
real ``tether serve`` process (SQLite; the API's own tests run on both databases), with
local folders and moto.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.storages import servers
from tests.storages.servers import MotoS3
from tests.test_e2e import Server, clean_env, ok, run_cli, running_server
from tether import Client, InvalidError, NotFoundError, Storage

pytestmark = pytest.mark.e2e
moto_s3 = servers.moto_s3


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("documents")
    (root / "photos").mkdir()
    (root / "photos" / "a.jpg").write_bytes(b"jpeg")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, documents: Path) -> Iterator[Server]:
    config = {
        "TETHER_OUTBOUND_ALLOWLIST": "127.0.0.1",
        "TETHER_LOCAL_FILES_SERVING_ENABLED": "true",
        "TETHER_LOCAL_FILES_DOCUMENT_ROOT": str(documents),
    }
    with running_server(tmp_path_factory.mktemp("conn-cli"), **config) as srv:
        srv.email, srv.key = srv.new_account()
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with server.client() as c:
        yield c


def cli(server: Server, *args: str, input: str | None = None, **env: str) -> Any:
    return run_cli(
        clean_env(TETHER_URL=server.url, TETHER_API_KEY=server.key, **env), *args, input=input
    )


def test_sdk_storage_lifecycle(client: Client, documents: Path) -> None:
    ds = client.create_dataset(f"sdk-{uuid.uuid4().hex[:8]}")
    storage = ds.add_source_storage("local", path=str(documents / "photos"), title="pics")
    assert isinstance(storage, Storage) and storage.type == "local"
    assert storage.check is not None and storage.check.ok and storage.check.sample_key == "a.jpg"
    assert repr(storage) == f"<Storage {storage.id} local 'pics'>"
    assert storage.id in [s.id for s in client.storages()]
    assert [s.id for s in client.storages(ds)] == [storage.id]
    assert [s.id for s in client.storages(ds.id)] == [storage.id]
    assert client.get_storage(storage.id).config == {"path": str(documents / "photos")}
    assert storage.update(title="renamed", recursive=False) is storage
    assert storage.title == "renamed" and storage.recursive is False
    assert storage.refresh().title == "renamed"
    result = storage.validate()
    assert result.ok and result.errors == [] and result.sample_key == "a.jpg"
    with pytest.raises(InvalidError) as caught:
        ds.add_source_storage("local", path=str(documents / "photos" / ".." / ".."))
    assert caught.value.code == "invalid_storage_config"
    with pytest.raises(InvalidError) as caught:
        storage.update(path="/etc")
    assert client.get_storage(storage.id).config["path"] == str(documents / "photos")
    storage.delete()
    with pytest.raises(NotFoundError):
        client.get_storage(storage.id)
    assert client.organization().external_id.startswith("tether-")  # type: ignore[union-attr]


def test_sdk_s3_secrets_are_write_only(client: Client, server: Server, moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="k/1.txt", Body=b"x")
    ds = client.create_dataset(f"sdk-s3-{uuid.uuid4().hex[:8]}")
    storage = ds.add_source_storage(
        "s3",
        bucket=bucket,
        prefix="k/",
        endpoint_url=moto_s3.url,
        access_key_id=moto_s3.access_key_id,
        secret_access_key=moto_s3.secret_access_key,
    )
    assert storage.secret_fields_set == ["access_key_id", "secret_access_key"]
    dumped = json.dumps(storage.to_dict())
    assert moto_s3.secret_access_key not in dumped and moto_s3.access_key_id not in dumped
    with pytest.raises(InvalidError) as caught:
        ds.add_source_storage("s3", bucket="no-such-bucket-sdk", endpoint_url=moto_s3.url,
                              access_key_id=moto_s3.access_key_id,
                              secret_access_key=moto_s3.secret_access_key)  # fmt: skip
    assert caught.value.code == "bucket_not_found" and "no-such-bucket-sdk" in caught.value.message
    assert moto_s3.secret_access_key not in server.output()


def test_cli_storage_commands(server: Server, moto_s3: MotoS3, documents: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    ok(cli(server, "datasets", "create", name))
    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="img/1.jpg", Body=b"x")
    base = ["storage", "add", "s3", "--dataset", name, "--bucket", bucket, "--prefix", "img/"]
    base += ["--endpoint-url", moto_s3.url, "--access-key-id", moto_s3.access_key_id]
    # the secret from the environment, then from standard input
    made = ok(
        cli(
            server,
            *base,
            "--no-recursive",
            "--title",
            "from env",
            TETHER_STORAGE_SECRET_ACCESS_KEY=moto_s3.secret_access_key,
        )
    )
    first = json.loads(made.stdout)
    assert first["recursive"] is False and first["title"] == "from env"
    assert first["secret_fields_set"] == ["access_key_id", "secret_access_key"]
    assert f"added storage {first['id']} (s3://{bucket}/img/)" in made.stderr
    made = ok(cli(server, *base, "--secret-stdin", input=moto_s3.secret_access_key + "\n"))
    second = json.loads(made.stdout)
    empty = ok(cli(server, *base, "--prefix", "nothing/", "--secret-stdin",
                   input=moto_s3.secret_access_key))  # fmt: skip
    assert "warning:" in empty.stderr and "no object" in empty.stderr
    # a failed check: exit 1, what to fix, nothing saved
    bad = cli(server, *base, "--bucket", "no-such-bucket-cli", "--secret-stdin", input="x")
    assert bad.returncode == 1 and "no-such-bucket-cli" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr

    listed = ok(cli(server, "storage", "list", "--dataset", name, COLUMNS="250")).stdout
    assert str(first["id"]) in listed and str(second["id"]) in listed and bucket in listed
    shown = json.loads(ok(cli(server, "storage", "show", str(first["id"]))).stdout)
    assert shown["config"]["bucket"] == bucket
    checked = ok(cli(server, "storage", "check", str(first["id"])))
    assert "reachable" in checked.stderr and "img/1.jpg" in checked.stderr
    ok(cli(server, "storage", "delete", str(second["id"]), "--yes"))
    assert cli(server, "storage", "show", str(second["id"])).returncode == 1
    # the bucket gone: the check says so and exits 1
    s3 = moto_s3.client()
    s3.delete_object(Bucket=bucket, Key="img/1.jpg")
    s3.delete_bucket(Bucket=bucket)
    gone = cli(server, "storage", "check", str(first["id"]))
    assert gone.returncode == 1 and "bucket" in gone.stderr and bucket in gone.stderr

    org = json.loads(ok(cli(server, "org", "show")).stdout)
    assert org["external_id"].startswith("tether-")
    everything = made.stdout + listed + json.dumps(shown) + server.output()
    assert moto_s3.secret_access_key not in everything


def test_cli_local_storage_and_unknown_type(server: Server, documents: Path) -> None:
    name = f"cli-local-{uuid.uuid4().hex[:8]}"
    ok(cli(server, "datasets", "create", name))
    made = ok(cli(server, "storage", "add", "local", "--dataset", name, "--path",
                  str(documents / "photos")))  # fmt: skip
    assert json.loads(made.stdout)["config"] == {"path": str(documents / "photos")}
    refused = cli(server, "storage", "add", "ftp", "--dataset", name)
    assert refused.returncode == 1 and "unknown storage type" in refused.stderr
    refused = cli(server, "storage", "add", "local", "--dataset", name, "--path", "/etc")
    assert refused.returncode == 1 and "document root" in refused.stderr, refused.stderr
