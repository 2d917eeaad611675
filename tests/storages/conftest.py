"""Backends for the one storage contract suite (test_contract.py).

Each backend is a pytest fixture that yields a ``Backend``: a fresh, empty storage, plus two
ways to reach the store *around* the backend (the file system, a raw client of the store's
own, never tether's code; memory, an in-process dict, is the one exception): ``read_uri``
reads the bytes a URI names, so the suite checks ``uri()`` against the real store rather
than against the code's own formula; ``put`` places an object, so a test of listing,
reading or deleting does not depend on ``Storage.write`` (and runs where that cannot be
tested: fake-gcs-server refuses obstore's uploads).

Backends: memory, local (a temporary folder), redis (a private redis-server on a free port),
s3 (moto), azure_blob (Azurite) and gcs (fake-gcs-server); the three emulators are session
servers from ``servers.py`` (skipped loudly when not installed), with a fresh bucket or
container per test and a small ``page_size`` (CLOUD_PAGE_SIZE).

TO ADD A BACKEND: write a fixture ``<name>_backend`` below that yields
``Backend(name, storage, read_uri, put)`` on a fresh, empty store -- ``read_uri`` and ``put``
through a client independent of tether's (its server process can be a session fixture of its
own, like ``redis_server`` or ``servers.moto_s3``) -- then add one line
``"<name>": "<name>_backend"`` to ``BACKEND_FACTORIES``. Every contract test then runs on it.
Set ``page_size`` on the storage (e.g. 10) if writing objects is slow there: the paging tests
write ``2 * page_size + 7`` objects. If the backend's server cannot take the backend's own
writes, turn only that refusal into a loud ``pytest.skip`` naming it (see ``gcs_backend``),
so the tests about ``Storage.write`` skip there and every other test still runs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tether.storages.base import Storage, StorageError
from tether.storages.local import URI_PREFIX, LocalStorage
from tether.storages.memory import MemoryStorage

from . import servers
from .servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, FakeGCS, MotoS3, service_account_json

# The emulators, one session server each (for test_cloud.py too).
moto_s3 = servers.moto_s3
azurite = servers.azurite
fake_gcs = servers.fake_gcs


Put = Callable[[str, bytes], None]  # place an object (key, data) without the backend


@dataclass
class Backend:
    name: str
    storage: Storage
    read_uri: Callable[[str], bytes]  # the bytes a URI names, read without the backend
    put: Put


# backend name -> the name of the fixture that yields its Backend (one line a backend).
BACKEND_FACTORIES: dict[str, str] = {
    "memory": "memory_backend",
    "local": "local_backend",
    "redis": "redis_backend",
    "s3": "s3_backend",
    "azure_blob": "azure_blob_backend",
    "gcs": "gcs_backend",
}


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def storage_backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(BACKEND_FACTORIES[request.param])
    return found


@pytest.fixture
def storage(storage_backend: Backend) -> Storage:
    return storage_backend.storage


@pytest.fixture
def put(storage_backend: Backend) -> Put:
    return storage_backend.put


# -- memory ---------------------------------------------------------------------------------


@pytest.fixture
def memory_backend() -> Backend:
    store = MemoryStorage()

    def read_uri(uri: str) -> bytes:
        parts = urlsplit(uri)
        assert parts.scheme == "memory" and parts.netloc == store.bucket, uri
        return b"".join(store.read(unquote(parts.path[1:])))

    # Nothing lies around an in-process dict: memory is the one backend that puts and reads
    # through itself.
    return Backend("memory", store, read_uri, store.write)


# -- local ----------------------------------------------------------------------------------


@pytest.fixture
def document_root(tmp_path: Path) -> Path:
    root = tmp_path / "documents"
    root.mkdir()
    return root


@pytest.fixture
def local_backend(document_root: Path) -> Backend:
    folder = document_root / "store"
    folder.mkdir()
    store = LocalStorage(path=str(folder), document_root=str(document_root))

    def read_uri(uri: str) -> bytes:
        assert uri.startswith(URI_PREFIX), uri
        return (document_root / unquote(uri[len(URI_PREFIX) :])).read_bytes()

    def put(key: str, data: bytes) -> None:
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Backend("local", store, read_uri, put)


# -- redis ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on a free loopback port (never the machine's shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("REDIS BACKEND NOT TESTED: no redis-server binary on this machine")
    import redis

    for _ in range(5):
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(tmp), *extra]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port, password=_password(extra))
        for _ in range(100):
            if proc.poll() is not None:
                break  # the port was taken meanwhile: try another
            try:
                client.ping()
                client.close()
                return proc, port
            except redis.ConnectionError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    pytest.fail("could not start a private redis-server")


def _password(extra: tuple[str, ...]) -> str | None:
    return extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    yield port
    stop(proc)


@pytest.fixture
def redis_backend(redis_server: int) -> Iterator[Backend]:
    import redis

    from tether.storages.redis import RedisStorage

    raw = redis.Redis(port=redis_server, db=3)
    raw.flushdb()
    store = RedisStorage(port=redis_server, db=3, page_size=100)

    def read_uri(uri: str) -> bytes:
        parts = urlsplit(uri)
        assert parts.scheme == "redis" and parts.netloc == "3", uri
        value = raw.get(unquote(parts.path[1:]).encode())
        assert value is not None, uri
        return bytes(value)

    def put(key: str, data: bytes) -> None:
        raw.set(key.encode(), data)

    yield Backend("redis", store, read_uri, put)
    store.close()
    raw.close()


# -- the cloud backends, each on its emulator (servers.py) ----------------------------------
#
# One session server each; a fresh bucket/container per test. ``read_uri`` and ``put`` use
# a client independent of tether's (boto3, azure-storage-blob, google-cloud-storage).

CLOUD_PAGE_SIZE = 10  # Azurite writes ~200 objects/s: the paging tests write 2 x 10 + 7


def _cloud_key(uri: str, scheme: str, container: str) -> str:
    """The key of a cloud URI: everything after ``<scheme>://<container>/``, as it is."""
    head = f"{scheme}://{container}/"
    assert uri.startswith(head), uri
    return uri[len(head) :]


@pytest.fixture(scope="session")
def s3_raw(moto_s3: MotoS3) -> Any:
    return moto_s3.client()


@pytest.fixture
def s3_backend(moto_s3: MotoS3, s3_raw: Any) -> Backend:
    from tether.storages.s3 import S3Storage

    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3_raw.create_bucket(Bucket=bucket)
    store = S3Storage(
        bucket,
        endpoint_url=moto_s3.url,
        access_key_id=moto_s3.access_key_id,
        secret_access_key=moto_s3.secret_access_key,
        max_retries=0,
    )
    store.page_size = CLOUD_PAGE_SIZE

    def put(key: str, data: bytes) -> None:
        s3_raw.put_object(Bucket=bucket, Key=key, Body=data)

    def read_uri(uri: str) -> bytes:
        body = s3_raw.get_object(Bucket=bucket, Key=_cloud_key(uri, "s3", bucket))["Body"]
        return bytes(body.read())

    return Backend("s3", store, read_uri, put)


@pytest.fixture(scope="session")
def azure_raw(azurite: Azurite) -> Any:
    from azure.storage.blob import BlobServiceClient

    credential = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    return BlobServiceClient(azurite.url, credential=credential)


@pytest.fixture
def azure_blob_backend(azurite: Azurite, azure_raw: Any) -> Backend:
    from tether.storages.azure_blob import AzureBlobStorage

    container = azure_raw.create_container(f"t{uuid.uuid4().hex[:12]}")
    store = AzureBlobStorage(
        container.container_name,
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        endpoint_url=azurite.url,
        max_retries=0,
    )
    store.page_size = CLOUD_PAGE_SIZE

    def put(key: str, data: bytes) -> None:
        container.upload_blob(key, data, overwrite=True)

    def read_uri(uri: str) -> bytes:
        key = _cloud_key(uri, "azure-blob", container.container_name)
        return bytes(container.download_blob(key).readall())

    return Backend("azure_blob", store, read_uri, put)


GCS_CANNOT_WRITE = (
    "GCS WRITE NOT TESTED: fake-gcs-server refuses obstore's uploads ('invalid uploadType'); "
    "everything else of the GCS backend runs on data put there by google-cloud-storage"
)


@pytest.fixture(scope="session")
def gcs_raw(fake_gcs: FakeGCS) -> Any:
    return fake_gcs.client()


@pytest.fixture(scope="session")
def gcs_account() -> str:
    return service_account_json()


@pytest.fixture
def gcs_backend(fake_gcs: FakeGCS, gcs_raw: Any, gcs_account: str) -> Backend:
    from tether.storages.gcs import GCSStorage

    bucket = gcs_raw.create_bucket(f"t-{uuid.uuid4().hex[:12]}")
    store = GCSStorage(
        bucket.name, endpoint_url=fake_gcs.url, service_account_json=gcs_account, max_retries=0
    )
    store.page_size = CLOUD_PAGE_SIZE
    _skip_refused_uploads(store)

    def put(key: str, data: bytes) -> None:
        bucket.blob(key).upload_from_string(data)

    def read_uri(uri: str) -> bytes:
        return bytes(bucket.blob(_cloud_key(uri, "gs", bucket.name)).download_as_bytes())

    return Backend("gcs", store, read_uri, put)


def _skip_refused_uploads(store: Storage) -> None:
    """The store's own write methods run as they are (validation included); only the
    emulator's refusal of the upload itself turns into a loud skip, never a pass."""
    for name in ("write", "write_stream"):
        method = getattr(store, name, None)
        if method is not None:
            setattr(store, name, _skipping_refusal(method))


def _skipping_refusal(method: Callable[..., None]) -> Callable[..., None]:
    def call(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except StorageError as exc:
            if "invalid uploadType" in exc.message:
                pytest.skip(GCS_CANNOT_WRITE)
            raise

    return call
