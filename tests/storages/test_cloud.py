"""The storage protocol on the three cloud backends, each against its real emulator process:
S3 on moto, Azure Blob on Azurite, GCS on fake-gcs-server (see ``servers.py``).

GCS writes are not covered: fake-gcs-server refuses obstore's uploads ("invalid
uploadType"), so GCS data is seeded with google-cloud-storage and only listing, stat, ranged
reads, delete, signing and errors are tested there. Wrong GCS credentials cannot be tested
either: the emulator accepts any.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from tests.storages.servers import (  # noqa: F401  (fixtures)
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    azurite,
    fake_gcs,
    free_port,
    moto_s3,
    service_account_json,
)
from tether.storages import objectstore
from tether.storages.base import (
    AccessDenied,
    InvalidConfig,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    Unreachable,
)
from tether.storages.registry import open_storage

AWKWARD = [
    "a b.txt",
    "pct%20x.txt",
    "plus+x.txt",
    "hash#x.txt",
    "q?x=1&y.txt",
    "ünïcødé/çø 文件.txt",
    "deep/a/b/c/d/e/f.txt",
    "sp ace/st*r~/x.txt",
]
PREFIXED = ["img", "img/1.jpg", "img/3.jpg", "img/sub/2.jpg", "img2/x.jpg", "imf/z.jpg", "imh.txt"]
ALL = sorted(AWKWARD + PREFIXED, key=lambda k: k.encode())
SAMPLE = b"0123456789abcdefghij"


def content(key: str) -> bytes:
    return f"content of {key}".encode()


@dataclass
class Cloud:
    """One backend under test: how to open it on a bucket and put test data there."""

    type: str
    config: Callable[[str], dict[str, Any]]  # bucket/container -> open_storage config
    new_bucket: Callable[[], str]
    seed: Callable[[str, str, bytes], None]  # (bucket, key, data)
    can_write: bool = True
    server: Any = None
    buckets: dict[str, str] = field(default_factory=dict)

    def open(self, bucket: str, **overrides: Any) -> Storage:
        return open_storage(self.type, **{**self.config(bucket), **overrides})


def _s3(request: pytest.FixtureRequest) -> Cloud:
    moto = request.getfixturevalue("moto_s3")

    def config(bucket: str) -> dict[str, Any]:
        return {
            "bucket": bucket,
            "endpoint_url": moto.url,
            "access_key_id": moto.access_key_id,
            "secret_access_key": moto.secret_access_key,
            "max_retries": 0,
        }

    def seed(bucket: str, key: str, data: bytes) -> None:
        open_storage("s3", **config(bucket)).write(key, data)

    return Cloud("s3", config, moto.new_bucket, seed, server=moto)


def _gcs(request: pytest.FixtureRequest) -> Cloud:
    gcs = request.getfixturevalue("fake_gcs")
    sa = service_account_json()

    def config(bucket: str) -> dict[str, Any]:
        return {
            "bucket": bucket,
            "endpoint_url": gcs.url,
            "service_account_json": sa,
            "max_retries": 0,
        }

    return Cloud("gcs", config, gcs.new_bucket, gcs.put, can_write=False)


def _azure(request: pytest.FixtureRequest) -> Cloud:
    az = request.getfixturevalue("azurite")

    def config(container: str) -> dict[str, Any]:
        return {
            "container": container,
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint_url": az.url,
            "max_retries": 0,
        }

    def seed(container: str, key: str, data: bytes) -> None:
        open_storage("azure_blob", **config(container)).write(key, data)

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


def keys(pages: Iterator[Any]) -> list[str]:
    return [info.key for page in pages for info in page]


def read_all(storage: Storage, key: str, **kw: Any) -> bytes:
    return b"".join(storage.read(key, **kw))


# --- listing -------------------------------------------------------------------------------


def test_list_gives_every_object_in_key_order_with_its_facts(store: Storage) -> None:
    infos = [info for page in store.list() for info in page]
    assert [i.key for i in infos] == ALL
    for info in infos:
        assert isinstance(info, ObjectInfo)
        assert info.size == len(content(info.key))
        assert info.etag and not info.etag.startswith('"')
        assert info.modified is not None and info.modified.utcoffset() == timedelta(0)


@pytest.mark.parametrize("page_size", [1, 4, 1000])
def test_pages_hold_at_most_a_page_and_join_up(store: Storage, page_size: int) -> None:
    store.page_size = page_size  # type: ignore[attr-defined]
    pages = list(store.list())
    assert all(0 < len(page) <= page_size for page in pages)
    assert keys(iter(pages)) == ALL


def test_start_after_resumes_after_any_key_or_between_keys(store: Storage) -> None:
    for i, key in enumerate(ALL):
        assert keys(store.list(start_after=key)) == ALL[i + 1 :]
    assert keys(store.list("sp", start_after="sp ace/st*r~")) == ["sp ace/st*r~/x.txt"]
    after = ["img/3.jpg", "img/sub/2.jpg", "img2/x.jpg"]
    assert keys(store.list(start_after="img/2")) == after + [k for k in ALL if k > "img2/x.jpg"]
    assert keys(store.list(start_after="")) == ALL
    assert keys(store.list(start_after="\U0010ffff")) == []


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("img", ["img", "img/1.jpg", "img/3.jpg", "img/sub/2.jpg", "img2/x.jpg"]),
        ("img/", ["img/1.jpg", "img/3.jpg", "img/sub/2.jpg"]),
        (
            "im",
            [
                "imf/z.jpg",
                "img",
                "img/1.jpg",
                "img/3.jpg",
                "img/sub/2.jpg",
                "img2/x.jpg",
                "imh.txt",
            ],
        ),
        ("img/s", ["img/sub/2.jpg"]),
        ("deep/a/b/", ["deep/a/b/c/d/e/f.txt"]),
        ("ünï", ["ünïcødé/çø 文件.txt"]),
        ("q?", ["q?x=1&y.txt"]),
        ("pct%", ["pct%20x.txt"]),
        ("sp ace/st*r~/", ["sp ace/st*r~/x.txt"]),
        ("sp ace/st*", ["sp ace/st*r~/x.txt"]),
        ("zzz", []),
        ("img/1.jpg/", []),
    ],
)
def test_prefix_is_a_plain_string_prefix(store: Storage, prefix: str, expected: list[str]) -> None:
    assert keys(store.list(prefix)) == expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (
            "",
            ["a b.txt", "hash#x.txt", "img", "imh.txt", "pct%20x.txt", "plus+x.txt", "q?x=1&y.txt"],
        ),
        ("img", ["img", "img/1.jpg", "img/3.jpg"]),
        ("img/", ["img/1.jpg", "img/3.jpg"]),
        ("deep/", []),
        ("deep/a/b/c/d/e/", ["deep/a/b/c/d/e/f.txt"]),
    ],
)
def test_recursive_off_keeps_only_direct_children(
    store: Storage, prefix: str, expected: list[str]
) -> None:
    assert keys(store.list(prefix, recursive=False)) == expected


def test_prefix_and_start_after_together(store: Storage) -> None:
    assert keys(store.list("img", start_after="img/1.jpg")) == [
        "img/3.jpg",
        "img/sub/2.jpg",
        "img2/x.jpg",
    ]
    assert keys(store.list("img/", start_after="a")) == ["img/1.jpg", "img/3.jpg", "img/sub/2.jpg"]
    assert keys(store.list("img", start_after="img2/x.jpg")) == []


# --- stat / read ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", AWKWARD)
def test_awkward_keys_stat_and_read_as_themselves(store: Storage, key: str) -> None:
    info = store.stat(key)
    assert info.key == key
    assert info.size == len(content(key))
    assert read_all(store, key) == content(key)


@pytest.mark.parametrize(
    ("start", "end"), [(0, None), (3, None), (0, 1), (2, 7), (5, 10_000), (4, 4), (9, 3)]
)
def test_ranged_reads(seeded: tuple[Cloud, str], start: int, end: int | None) -> None:
    cloud, bucket = seeded
    storage = cloud.open(bucket)
    key = "img/3.jpg"
    whole = content(key)
    assert read_all(storage, key, start=start, end=end) == whole[start:end]


@pytest.mark.parametrize("key", ["no-such-key", "im", "deep/a", "img/1"])
def test_missing_keys_are_object_not_found(store: Storage, key: str) -> None:
    with pytest.raises(ObjectNotFound):
        store.stat(key)
    with pytest.raises(ObjectNotFound):
        read_all(store, key)


@pytest.mark.parametrize("key", ["img/", "/img", "img//1.jpg", ""])
def test_keys_obstore_would_rewrite_are_refused_not_aliased(store: Storage, key: str) -> None:
    """obstore turns ``img/`` into ``img``: tether refuses such keys instead of answering
    for another object."""
    for call in (store.stat, lambda k: read_all(store, k), store.delete):
        with pytest.raises(StorageError) as caught:
            call(key)
        assert caught.value.code == "invalid_object_key"


def test_a_listing_meeting_a_key_obstore_cannot_hold_fails_naming_it(
    request: pytest.FixtureRequest,
) -> None:
    """``a//b`` cannot be an obstore path: the listing says so instead of skipping it."""
    moto = request.getfixturevalue("moto_s3")
    bucket = moto.new_bucket()
    moto.client().put_object(Bucket=bucket, Key="x/a//b", Body=b"1")
    moto.client().put_object(Bucket=bucket, Key="y/fine", Body=b"1")
    cloud = _s3(request)
    storage = cloud.open(bucket)
    assert keys(storage.list("y/")) == ["y/fine"]
    with pytest.raises(StorageError) as caught:
        keys(storage.list())
    assert caught.value.code == "invalid_object_key" and "x/a//b" in caught.value.message


# --- write / delete ------------------------------------------------------------------------


@pytest.fixture
def scratch(cloud: Cloud) -> tuple[Cloud, Storage, str]:
    bucket = cloud.new_bucket()
    return cloud, cloud.open(bucket), bucket


def test_write_then_stat_read_overwrite(scratch: tuple[Cloud, Storage, str]) -> None:
    cloud, storage, _ = scratch
    if not cloud.can_write:
        pytest.skip("fake-gcs-server refuses obstore's uploads (see module docstring)")
    for key in AWKWARD:
        storage.write(key, content(key), content_type="text/plain")
    assert keys(storage.list()) == sorted(AWKWARD, key=lambda k: k.encode())
    for key in AWKWARD:
        assert read_all(storage, key) == content(key)
    before = storage.stat("a b.txt")
    storage.write("a b.txt", SAMPLE)
    after = storage.stat("a b.txt")
    assert (after.size, after.etag != before.etag) == (len(SAMPLE), True)
    assert read_all(storage, "a b.txt", start=10) == SAMPLE[10:]
    storage.write("empty", b"")
    assert storage.stat("empty").size == 0 and read_all(storage, "empty") == b""


def test_delete_removes_and_a_missing_key_is_fine(scratch: tuple[Cloud, Storage, str]) -> None:
    cloud, storage, bucket = scratch
    for key in ["keep", "gone #1", "ü/gone?"]:
        cloud.seed(bucket, key, content(key))
    storage.delete("gone #1")
    storage.delete("ü/gone?")
    storage.delete("gone #1")  # again: not an error
    storage.delete("never-there")
    assert keys(storage.list()) == ["keep"]
    with pytest.raises(ObjectNotFound):
        storage.stat("gone #1")


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


# --- uri / sign ----------------------------------------------------------------------------


def test_uri_names_the_bucket_and_the_raw_key(seeded: tuple[Cloud, str]) -> None:
    cloud, bucket = seeded
    scheme = {"s3": "s3", "gcs": "gs", "azure_blob": "azure-blob"}[cloud.type]
    storage = cloud.open(bucket)
    assert storage.scheme == scheme
    for key in AWKWARD:
        assert storage.uri(key) == f"{scheme}://{bucket}/{key}"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


@pytest.mark.parametrize("key", ["a b.txt", "q?x=1&y.txt", "hash#x.txt", "ünïcødé/çø 文件.txt"])
def test_signed_url_downloads_the_right_bytes(store: Storage, key: str) -> None:
    url = store.sign(key, timedelta(minutes=5))
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert _get(url) == content(key)


def test_azurite_refuses_a_tampered_sas(seeded: tuple[Cloud, str]) -> None:
    cloud, bucket = seeded
    if cloud.type != "azure_blob":
        pytest.skip("only Azurite checks signatures (moto and fake-gcs-server do not)")
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
