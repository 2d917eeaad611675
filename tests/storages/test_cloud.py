"""What only the cloud backends have, each against its real emulator process: S3 on moto,
Azure Blob on Azurite, GCS on fake-gcs-server (see ``servers.py``).

The storage protocol itself -- listing, prefixes, paging, start_after, stat, ranged reads,
write, delete, awkward keys, ``uri`` and ``sign`` -- is the contract suite's
(test_contract.py), which runs on these three backends too. Here: etags and times as the
clouds give them, characters a listing query must escape, an object named like a folder,
keys obstore would rewrite, signing (Azurite checks a SAS; a GCS signature equals Google's
signer's), credentials refused, a missing bucket, an unreachable endpoint, and no ambient
credentials. Test data is put with each cloud's own client (boto3, azure-storage-blob,
google-cloud-storage), not through tether.

GCS writes are not covered: fake-gcs-server refuses obstore's uploads ("invalid
uploadType"). Wrong GCS credentials cannot be tested either: the emulator accepts any.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from tests.storages.servers import AZURITE_ACCOUNT, AZURITE_KEY, free_port, service_account_json
from tether.storages import objectstore
from tether.storages.base import (
    AccessDenied,
    InvalidConfig,
    ObjectNotFound,
    Storage,
    StorageError,
    Unreachable,
)
from tether.storages.registry import open_storage

# Keys whose characters a listing query escapes (" *~" are what obstore's S3 signer encodes
# unlike the URL it sends), and an object named like a folder beside that folder.
QUERY = [
    "a b.txt",
    "pct%20x.txt",
    "plus+x.txt",
    "hash#x.txt",
    "q?x=1&y.txt",
    "ünïcødé/çø 文件.txt",
    "sp ace/st*r~/x.txt",
    "sp ace/st*r~~.txt",
]
FOLDERISH = ["img", "img/1.jpg", "img/3.jpg", "img/sub/2.jpg", "img2/x.jpg", "imh.txt"]
ALL = sorted(QUERY + FOLDERISH, key=lambda k: k.encode())


def content(key: str) -> bytes:
    return f"content of {key}".encode()


@dataclass
class Cloud:
    """One backend under test: how to open it on a bucket and put test data there."""

    type: str
    config: Callable[[str], dict[str, Any]]  # bucket/container -> open_storage config
    new_bucket: Callable[[], str]
    seed: Callable[[str, str, bytes], None]  # (bucket, key, data), with the cloud's own client
    can_write: bool = True
    server: Any = None

    def open(self, bucket: str, **overrides: Any) -> Storage:
        return open_storage(self.type, **{**self.config(bucket), **overrides})


def _s3(request: pytest.FixtureRequest) -> Cloud:
    moto = request.getfixturevalue("moto_s3")
    raw = request.getfixturevalue("s3_raw")

    def config(bucket: str) -> dict[str, Any]:
        return {
            "bucket": bucket,
            "endpoint_url": moto.url,
            "access_key_id": moto.access_key_id,
            "secret_access_key": moto.secret_access_key,
            "max_retries": 0,
        }

    def seed(bucket: str, key: str, data: bytes) -> None:
        raw.put_object(Bucket=bucket, Key=key, Body=data)

    return Cloud("s3", config, moto.new_bucket, seed, server=moto)


def _gcs(request: pytest.FixtureRequest) -> Cloud:
    gcs = request.getfixturevalue("fake_gcs")
    raw = request.getfixturevalue("gcs_raw")
    sa = request.getfixturevalue("gcs_account")

    def config(bucket: str) -> dict[str, Any]:
        return {
            "bucket": bucket,
            "endpoint_url": gcs.url,
            "service_account_json": sa,
            "max_retries": 0,
        }

    def seed(bucket: str, key: str, data: bytes) -> None:
        raw.bucket(bucket).blob(key).upload_from_string(data)

    return Cloud("gcs", config, gcs.new_bucket, seed, can_write=False)


def _azure(request: pytest.FixtureRequest) -> Cloud:
    az = request.getfixturevalue("azurite")
    raw = request.getfixturevalue("azure_raw")

    def config(container: str) -> dict[str, Any]:
        return {
            "container": container,
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint_url": az.url,
            "max_retries": 0,
        }

    def seed(container: str, key: str, data: bytes) -> None:
        raw.get_container_client(container).upload_blob(key, data, overwrite=True)

    return Cloud("azure_blob", config, az.new_container, seed)


@pytest.fixture(scope="module", params=["s3", "gcs", "azure_blob"])
def cloud(request: pytest.FixtureRequest) -> Cloud:
    return {"s3": _s3, "gcs": _gcs, "azure_blob": _azure}[request.param](request)


@pytest.fixture(scope="module")
def seeded(cloud: Cloud) -> tuple[Cloud, str]:
    """A bucket holding ALL (each key's content names the key) and nothing else."""
    bucket = cloud.new_bucket()
    for key in ALL:
        cloud.seed(bucket, key, content(key))
    return cloud, bucket


@pytest.fixture
def store(seeded: tuple[Cloud, str]) -> Storage:
    cloud, bucket = seeded
    return cloud.open(bucket)


@pytest.fixture
def scratch(cloud: Cloud) -> tuple[Cloud, Storage, str]:
    """An empty bucket of its own, and the storage on it."""
    bucket = cloud.new_bucket()
    return cloud, cloud.open(bucket), bucket


def keys(pages: Iterator[Any]) -> list[str]:
    return [info.key for page in pages for info in page]


def read_all(storage: Storage, key: str, **kw: Any) -> bytes:
    return b"".join(storage.read(key, **kw))


# --- listing -------------------------------------------------------------------------------


def test_listed_etags_are_unquoted_and_times_utc(store: Storage) -> None:
    """The clouds send ETags in quotes and times with offsets; tether's are bare and UTC."""
    infos = [info for page in store.list() for info in page]
    assert [i.key for i in infos] == ALL
    for info in infos:
        assert info.etag and not info.etag.startswith('"') and not info.etag.endswith('"')
        assert info.modified is not None and info.modified.utcoffset() == timedelta(0)
        assert store.stat(info.key) == info


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("ünï", ["ünïcødé/çø 文件.txt"]),
        ("q?", ["q?x=1&y.txt"]),
        ("pct%", ["pct%20x.txt"]),
        ("plus+", ["plus+x.txt"]),
        ("hash#", ["hash#x.txt"]),
        ("a ", ["a b.txt"]),
        ("sp ace/", ["sp ace/st*r~/x.txt", "sp ace/st*r~~.txt"]),
        ("sp ace/st*r~/", ["sp ace/st*r~/x.txt"]),
        ("sp ace/st*r~~", ["sp ace/st*r~~.txt"]),
        ("sp ace/st*", ["sp ace/st*r~/x.txt", "sp ace/st*r~~.txt"]),
    ],
)
def test_prefixes_a_listing_query_must_escape(
    store: Storage, prefix: str, expected: list[str]
) -> None:
    assert keys(store.list(prefix)) == expected
    assert keys(store.list(prefix, recursive=False)) == [
        k for k in expected if "/" not in k[len(prefix) :]
    ]
    for key in expected:
        assert store.stat(key).key == key and read_all(store, key) == content(key)


def test_start_after_a_key_a_listing_query_must_escape(store: Storage) -> None:
    for i, key in enumerate(ALL):
        assert keys(store.list(start_after=key)) == ALL[i + 1 :]
    assert keys(store.list("sp", start_after="sp ace/st*r~")) == [
        "sp ace/st*r~/x.txt",
        "sp ace/st*r~~.txt",
    ]
    assert keys(store.list("sp", start_after="sp ace/st*r~/x.txt")) == ["sp ace/st*r~~.txt"]
    assert keys(store.list(start_after="")) == ALL
    assert keys(store.list(start_after="\U0010ffff")) == []


def test_an_object_named_like_a_folder_is_listed_beside_it(store: Storage) -> None:
    """obstore lists by path segment and drops the object named exactly ``img`` from a
    listing of ``img``; tether's listing keeps it."""
    assert keys(store.list("img")) == [
        "img",
        "img/1.jpg",
        "img/3.jpg",
        "img/sub/2.jpg",
        "img2/x.jpg",
    ]
    assert keys(store.list("img/")) == ["img/1.jpg", "img/3.jpg", "img/sub/2.jpg"]
    assert keys(store.list("img", recursive=False)) == ["img", "img/1.jpg", "img/3.jpg"]
    assert "img" in keys(store.list(recursive=False))
    assert keys(store.list("img", start_after="img")) == [
        "img/1.jpg", "img/3.jpg", "img/sub/2.jpg", "img2/x.jpg",
    ]  # fmt: skip
    assert store.stat("img").size == len(content("img"))
    assert read_all(store, "img") == content("img")


# --- stat / read ---------------------------------------------------------------------------


def test_a_reversed_range_reads_nothing(store: Storage) -> None:
    """``data[9:3]``: no bytes, and no request the server would refuse."""
    assert read_all(store, "img/3.jpg", start=9, end=3) == b""


@pytest.mark.parametrize("key", ["img/", "/img", "img//1.jpg", ""])
def test_keys_obstore_would_rewrite_are_refused_not_aliased(store: Storage, key: str) -> None:
    """obstore turns ``img/`` into ``img``: tether refuses such keys instead of answering
    for another object."""
    calls: list[Callable[[str], object]] = [
        store.stat,
        lambda k: read_all(store, k),
        store.delete,
        lambda k: store.sign(k, timedelta(minutes=1)),
    ]
    for call in calls:
        with pytest.raises(InvalidConfig) as caught:
            call(key)
        assert caught.value.code == "invalid_object_key"


def test_a_listing_meeting_a_key_obstore_cannot_hold_fails_naming_it(
    request: pytest.FixtureRequest,
) -> None:
    """``a//b`` cannot be an obstore path: the listing says so instead of skipping it."""
    cloud = _s3(request)
    bucket = cloud.new_bucket()
    cloud.seed(bucket, "x/a//b", b"1")
    cloud.seed(bucket, "y/fine", b"1")
    storage = cloud.open(bucket)
    assert keys(storage.list("y/")) == ["y/fine"]
    with pytest.raises(StorageError) as caught:
        keys(storage.list())
    assert caught.value.code == "invalid_object_key" and "x/a//b" in caught.value.message


# --- sign ----------------------------------------------------------------------------------


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


@pytest.mark.parametrize("key", QUERY)
def test_signed_url_downloads_the_right_bytes(store: Storage, key: str) -> None:
    """Every cloud backend signs (the contract also allows None), for every awkward key."""
    url = store.sign(key, timedelta(minutes=5))
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert _get(url) == content(key)


def test_azurite_refuses_a_tampered_sas(request: pytest.FixtureRequest) -> None:
    """Only Azurite checks signatures (moto and fake-gcs-server do not)."""
    cloud = _azure(request)
    bucket = cloud.new_bucket()
    for key in ["img/1.jpg", "img/3.jpg"]:
        cloud.seed(bucket, key, content(key))
    url = cloud.open(bucket).sign("img/1.jpg", timedelta(minutes=5))
    assert url is not None and _get(url) == content("img/1.jpg")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["sp"] = "rwd"  # ask for more than was signed
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(tampered)
    assert caught.value.code == 403
    other = urlunsplit(parts._replace(path=parts.path.replace("img/1.jpg", "img/3.jpg")))
    with pytest.raises(urllib.error.HTTPError):
        _get(other)


@pytest.mark.parametrize("key", ["a b.txt", "q?x=1&y.txt", "hash#x.txt", "ü/çø 文件~*.txt"])
def test_gcs_signature_matches_googles_own_signer(key: str) -> None:
    """fake-gcs-server does not check signatures; google-cloud-storage's V4 signer does the
    same computation independently, for the same instant."""
    from google.cloud.storage._signing import generate_signed_url_v4
    from google.oauth2 import service_account

    from tether.storages.gcs import sign_v4

    info = json.loads(service_account_json())
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    ours = sign_v4(info, "https://storage.googleapis.com", "bkt-x", key, timedelta(hours=1), now)
    theirs = generate_signed_url_v4(
        service_account.Credentials.from_service_account_info(info),
        resource=f"/bkt-x/{quote(key, safe='/~')}",
        expiration=timedelta(hours=1),
        api_access_endpoint="https://storage.googleapis.com",
        _request_timestamp=now.strftime("%Y%m%dT%H%M%SZ"),
    )
    assert dict(parse_qsl(urlsplit(ours).query)) == dict(parse_qsl(urlsplit(theirs).query))
    assert urlsplit(ours).path == urlsplit(theirs).path


def test_gcs_without_a_key_cannot_sign(request: pytest.FixtureRequest) -> None:
    gcs = request.getfixturevalue("fake_gcs")
    storage = open_storage(
        "gcs", bucket="b-x", endpoint_url=gcs.url, allow_ambient_credentials=True
    )
    assert storage.sign("a", timedelta(minutes=1)) is None


# --- errors --------------------------------------------------------------------------------


def test_wrong_credentials_are_access_denied(seeded: tuple[Cloud, str]) -> None:
    cloud, bucket = seeded
    wrong = {
        "s3": {"secret_access_key": "not-the-secret"},
        "azure_blob": {"account_key": base64.b64encode(b"x" * 64).decode()},
    }.get(cloud.type)
    if wrong is None:
        pytest.skip("fake-gcs-server accepts any credentials")
    storage = cloud.open(bucket, **wrong)
    with contextlib.ExitStack() as stack:
        if cloud.type == "s3":
            stack.enter_context(cloud.server.auth_enforced())
            assert keys(cloud.open(bucket).list("img/")), "the right key still works"
        with pytest.raises(AccessDenied):
            keys(storage.list())
        with pytest.raises(AccessDenied):
            storage.stat("img")
        with pytest.raises(AccessDenied):
            read_all(storage, "img")


def test_a_missing_bucket_is_object_not_found(cloud: Cloud) -> None:
    storage = cloud.open("no-such-bucket-tether")
    with pytest.raises(ObjectNotFound):
        keys(storage.list())
    with pytest.raises(ObjectNotFound):
        storage.stat("img")


def test_an_unreachable_endpoint_is_unreachable_and_quick(cloud: Cloud) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    if cloud.type == "azure_blob":
        dead += f"/{AZURITE_ACCOUNT}"
    storage = cloud.open("bkt", endpoint_url=dead, max_retries=1, timeout_s=3)
    started = time.monotonic()
    with pytest.raises(Unreachable):
        keys(storage.list())
    with pytest.raises(Unreachable):
        storage.stat("a")
    assert time.monotonic() - started < 10


def test_errors_are_tethers_own(cloud: Cloud) -> None:
    """Whatever goes wrong, only StorageError comes out (here: a key obstore cannot hold)."""
    storage = cloud.open("no-such-bucket-tether")
    with pytest.raises(StorageError) as caught:
        storage.stat("a//b")
    assert type(caught.value).__module__ == "tether.storages.base"


# --- no ambient credentials ----------------------------------------------------------------

CREDENTIAL_FIELDS = {
    "s3": ("access_key_id", "secret_access_key"),
    "gcs": ("service_account_json",),
    "azure_blob": ("account_key",),
}


class Listener:
    """A loopback port standing in for a cloud metadata service: counts who knocks."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    """Every metadata/identity address the clients know, pointed at one loopback listener;
    the machine's own credentials hidden."""
    listener = Listener()
    url = f"http://127.0.0.1:{listener.port}"
    for name in [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
    ]:  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/nonexistent-tether-home")
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", url)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{listener.port}")
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{listener.port}")
    monkeypatch.setenv("AZURE_MSI_ENDPOINT", f"{url}/metadata/identity/oauth2/token")
    yield listener
    listener.sock.close()


def test_no_credentials_is_invalid_config_and_contacts_nothing(
    cloud: Cloud, metadata: Listener
) -> None:
    bucket = cloud.new_bucket()
    config = cloud.config(bucket)
    for name in CREDENTIAL_FIELDS[cloud.type]:
        config.pop(name)
    with pytest.raises(InvalidConfig) as caught:
        open_storage(cloud.type, **config)
    assert CREDENTIAL_FIELDS[cloud.type][0] in caught.value.message
    time.sleep(0.2)
    assert metadata.hits == 0

    # The control: the operator's opt-in does reach for the (redirected) metadata service,
    # so the zero above is not for want of a listener.
    storage = open_storage(cloud.type, **config, allow_ambient_credentials=True)
    with pytest.raises(StorageError):
        keys(storage.list())
    assert metadata.hits > 0


# --- write_stream ------------------------------------------------------------------------


class Broken(Exception):
    pass


def _parts(total: int, size: int = 1 << 20, fail: bool = False) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = bytes([sent // size % 251]) * min(size, total - sent)
        sent += len(chunk)
        yield chunk
    if fail:
        raise Broken("the source broke off")


@pytest.mark.parametrize(
    "total", [0, 1000, objectstore.STREAM_PART + 3 * (1 << 20)], ids=["empty", "small", "multipart"]
)
def test_write_stream_small_and_multipart(scratch: tuple[Cloud, Storage, str], total: int) -> None:
    cloud, storage, _ = scratch
    if not cloud.can_write:
        pytest.skip("fake-gcs-server refuses obstore's uploads (see module docstring)")
    storage.write_stream("up/ü b#.bin", _parts(total), content_type="image/png")
    assert storage.stat("up/ü b#.bin").size == total
    assert read_all(storage, "up/ü b#.bin") == b"".join(_parts(total))
    if 0 < total <= objectstore.STREAM_PART and cloud.type == "s3":  # one PUT: ETag = MD5
        assert storage.stat("up/ü b#.bin").etag == hashlib.md5(b"".join(_parts(total))).hexdigest()


@pytest.mark.parametrize("total", [1000, objectstore.STREAM_PART + (1 << 20)], ids=["small", "big"])
def test_write_stream_that_fails_leaves_no_object(
    scratch: tuple[Cloud, Storage, str], total: int
) -> None:
    cloud, storage, _ = scratch
    if not cloud.can_write:
        pytest.skip("fake-gcs-server refuses obstore's uploads (see module docstring)")
    with pytest.raises(Broken):
        storage.write_stream("up/never.bin", _parts(total, fail=True))
    storage.write("up/old.bin", b"before")
    with pytest.raises(Broken):
        storage.write_stream("up/old.bin", _parts(total, fail=True))
    assert keys(storage.list()) == ["up/old.bin"]
    assert read_all(storage, "up/old.bin") == b"before"
