"""Sources to sync from, on real backends: the in-process memory store, a folder under a
document root, a private redis-server (and moto S3 in test_s3.py). Every test that takes
``source`` runs on each, and on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.storages.conftest import start_redis, stop
from tests.sync.helpers import Place, new_place
from tether.config import Settings
from tether.storages.base import Storage


@dataclass
class Source:
    """A store to put objects in, and the connection fields a storage of it takes."""

    type: str
    fields: dict[str, Any]
    storage: Storage

    def put(self, key: str, data: bytes = b"x") -> None:
        self.storage.write(key, data)

    def drop(self, key: str) -> None:
        self.storage.delete(key)


@pytest.fixture
def sync_settings(settings: Settings, tmp_path: Path) -> Settings:
    root = tmp_path / "documents"
    root.mkdir()
    return settings.model_copy(
        update={
            "local_files_serving_enabled": True,
            "local_files_document_root": root,
            "outbound_allowlist": "127.0.0.1",  # the test servers listen on loopback
        }
    )


@pytest.fixture
def place(engine: Engine, sync_settings: Settings) -> Place:
    return new_place(engine, sync_settings)


@pytest.fixture(scope="session")
def sync_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_redis(tmp_path_factory.mktemp("sync-redis"))
    yield port
    stop(proc)


def memory_source() -> Source:
    from tether.storages.memory import MemoryStorage

    bucket = f"sync-{uuid.uuid4().hex[:10]}"
    return Source("memory", {"bucket": bucket}, MemoryStorage(bucket=bucket))


def local_source(settings: Settings) -> Source:
    from tether.storages.local import LocalStorage

    root = settings.local_files_document_root
    assert root is not None
    folder = root / f"store-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return Source("local", {"path": str(folder)}, LocalStorage(str(folder), root))


def redis_source(port: int) -> Iterator[Source]:
    import redis

    from tether.storages.redis import RedisStorage

    raw = redis.Redis(port=port, db=5)
    raw.flushdb()
    store = RedisStorage(port=port, db=5)
    yield Source("redis", {"port": port, "db": 5}, store)
    store.close()
    raw.close()


@pytest.fixture(params=["memory", "local", "redis"])
def source(request: pytest.FixtureRequest, sync_settings: Settings) -> Iterator[Source]:
    if request.param == "memory":
        yield memory_source()
    elif request.param == "local":
        yield local_source(sync_settings)
    else:
        yield from redis_source(request.getfixturevalue("sync_redis"))
