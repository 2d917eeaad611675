"""Backends for the one storage contract suite (test_contract.py).

Each backend is a pytest fixture that yields a ``Backend``: a fresh, empty storage plus a way
to read what a URI names *around* the backend (the file system, a raw client), so the suite
checks ``uri()`` against the real store rather than against the code's own formula.

TO ADD A BACKEND (s3, gcs, azure_blob, ...): write a fixture ``<name>_backend`` below (its
server process can be a session fixture of its own, like ``redis_server``), then add one line
``"<name>": "<name>_backend"`` to ``BACKEND_FACTORIES``. Every contract test then runs on it.
Set ``page_size`` on the storage (e.g. 100) if writing 2 x PAGE_SIZE objects is slow there:
the paging tests write ``2 * page_size + 7`` objects.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tether.storages.base import Storage
from tether.storages.local import URI_PREFIX, LocalStorage
from tether.storages.memory import MemoryStorage


@dataclass
class Backend:
    name: str
    storage: Storage
    read_uri: Callable[[str], bytes]  # the bytes a URI names, read without the backend


# backend name -> the name of the fixture that yields its Backend (one line a backend).
BACKEND_FACTORIES: dict[str, str] = {
    "memory": "memory_backend",
    "local": "local_backend",
    "redis": "redis_backend",
}


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def storage_backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(BACKEND_FACTORIES[request.param])
    return found


@pytest.fixture
def storage(storage_backend: Backend) -> Storage:
    return storage_backend.storage


# -- memory ---------------------------------------------------------------------------------


@pytest.fixture
def memory_backend() -> Backend:
    store = MemoryStorage()

    def read_uri(uri: str) -> bytes:
        parts = urlsplit(uri)
        assert parts.scheme == "memory" and parts.netloc == store.bucket, uri
        return b"".join(store.read(unquote(parts.path[1:])))

    return Backend("memory", store, read_uri)


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

    return Backend("local", store, read_uri)


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

    yield Backend("redis", store, read_uri)
    store.close()
    raw.close()
