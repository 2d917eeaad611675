"""What only Redis has: the key prefix ``path``, non-string keys, SCAN patterns, its errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tether.storages.base import AccessDenied, InvalidConfig, ObjectNotFound, Unreachable
from tether.storages.redis import RedisStorage
from tether.storages.registry import open_storage

from .conftest import free_port, start_redis, stop

PASSWORD = "s3cret-pa55word"


def listed_keys(store: RedisStorage, prefix: str = "", **kwargs: object) -> list[str]:
    return [info.key for page in store.list(prefix, **kwargs) for info in page]  # type: ignore[arg-type]


@pytest.fixture
def raw(redis_server: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server, db=5)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_redis(tmp_path_factory.mktemp("redis-auth"), "--requirepass", PASSWORD)
    yield port
    stop(proc)


def test_path_bounds_what_the_storage_sees(redis_server: int, raw: redis.Redis) -> None:
    for key in ["tasks/1", "tasks/2", "tasks2/x", "other/1", "task"]:
        raw.set(key, key)
    store = RedisStorage(port=redis_server, db=5, path="tasks/")
    assert listed_keys(store) == ["tasks/1", "tasks/2"]
    assert listed_keys(store, "tasks/2") == ["tasks/2"]
    assert listed_keys(store, "t") == ["tasks/1", "tasks/2"]  # both prefixes hold
    assert listed_keys(store, "other/") == []  # outside path
    assert store.stat("tasks/1").size == len("tasks/1")
    for call in (store.stat, store.delete, store.uri, lambda k: store.write(k, b"x")):
        with pytest.raises(InvalidConfig):
            call("other/1")
    assert raw.get("other/1") == b"other/1"


def test_glob_characters_in_a_prefix_are_literal(redis_server: int, raw: redis.Redis) -> None:
    for key in ["a*b", "axb", "a?c", "azc", "[x]1", "x1", "a\\d", "ad"]:
        raw.set(key, b"v")
    store = RedisStorage(port=redis_server, db=5)
    assert listed_keys(store, "a*") == ["a*b"]
    assert listed_keys(store, "a?") == ["a?c"]
    assert listed_keys(store, "[x]") == ["[x]1"]
    assert listed_keys(store, "a\\") == ["a\\d"]


def test_non_string_and_non_text_keys_are_not_objects(redis_server: int, raw: redis.Redis) -> None:
    raw.set("s/1", b"one")
    raw.hset("s/hash", "f", "v")
    raw.rpush("s/list", "x")
    raw.set(b"s/\xff\xfe", b"bytes key")
    store = RedisStorage(port=redis_server, db=5)
    assert listed_keys(store) == ["s/1"]
    with pytest.raises(ObjectNotFound):
        store.stat("s/hash")
    with pytest.raises(ObjectNotFound):
        store.read("s/list")


def test_etag_is_a_hash_of_the_value(redis_server: int, raw: redis.Redis) -> None:
    store = RedisStorage(port=redis_server, db=5)
    store.write("a", b'{"x": 1}')
    store.write("b", b'{"x": 1}')
    store.write("c", b'{"x": 2}')
    etags = {info.key: info.etag for page in store.list() for info in page}
    assert etags["a"] == etags["b"] != etags["c"]
    assert all(info.modified is None for page in store.list() for info in page)


def test_uri_form(redis_server: int) -> None:
    store = RedisStorage(port=redis_server, db=5)
    assert store.uri("tasks/a b#1.json") == "redis://5/tasks/a%20b%231.json"


def test_a_wrong_or_missing_password_is_access_denied(locked_server: int) -> None:
    for password in (None, "wrong"):
        store = RedisStorage(port=locked_server, password=password)
        with pytest.raises(AccessDenied) as caught:
            list(store.list())
        assert PASSWORD not in str(caught.value) and "wrong" not in str(caught.value)
    store = RedisStorage(port=locked_server, password=PASSWORD)
    store.write("k", b"v")
    assert listed_keys(store) == ["k"]
    store.delete("k")


def test_no_server_is_unreachable() -> None:
    store = RedisStorage(port=free_port(), timeout_seconds=2)
    for call in (lambda: list(store.list()), lambda: store.stat("k"), lambda: store.delete("k")):
        with pytest.raises(Unreachable):
            call()


def test_a_db_the_server_does_not_have(redis_server: int) -> None:
    store = RedisStorage(port=redis_server, db=999)
    with pytest.raises(InvalidConfig):
        store.stat("k")


@pytest.mark.parametrize(
    "config", [{"port": 0}, {"port": 70000}, {"db": -1}, {"port": "6379"}, {"page_size": 0}]
)
def test_bad_config(config: dict[str, object]) -> None:
    with pytest.raises(InvalidConfig):
        RedisStorage(**config)  # type: ignore[arg-type]


def test_open_storage_builds_it(redis_server: int, raw: redis.Redis, tmp_path: Path) -> None:
    store = open_storage(
        "redis", host="127.0.0.1", port=redis_server, password=None, db=5, path="t/"
    )
    store.write("t/x", b"1")
    assert raw.get("t/x") == b"1"


@pytest.fixture(scope="module")
def no_script_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server whose default user may not run scripts (as on some managed services)."""
    proc, port = start_redis(tmp_path_factory.mktemp("redis-noscript"))
    client = redis.Redis(port=port)
    client.execute_command("ACL", "SETUSER", "default", "-@scripting")
    client.close()
    yield port
    stop(proc)


def test_listing_without_scripts_gives_the_same_pages(
    redis_server: int, raw: redis.Redis, no_script_server: int
) -> None:
    """The scripted SCAN (values hashed inside Redis) and the SCAN + MGET fallback agree."""
    plain = redis.Redis(port=no_script_server, db=5)
    plain.flushdb()
    names = [f"k/{i:04d}" for i in range(250)] + ["k/a b#?", "k/é", "k/e\u0301", "k/x/y"]
    for client in (raw, plain):
        for index, name in enumerate(names):
            client.set(name, f"value {index}" * (index % 7))
        client.hset("k/hash", "f", "v")
    scripted = RedisStorage(port=redis_server, db=5, page_size=64)
    fallback = RedisStorage(port=no_script_server, db=5, page_size=64)
    assert fallback._hashed_scan(b"k/*") is None  # really without scripts
    assert scripted._hashed_scan(b"k/*") is not None
    for kwargs in ({}, {"start_after": "k/0100"}, {"recursive": False}):
        ours = [list(page) for page in scripted.list("k/", **kwargs)]  # type: ignore[arg-type]
        theirs = [list(page) for page in fallback.list("k/", **kwargs)]  # type: ignore[arg-type]
        assert ours == theirs
        assert all(len(page) <= 64 for page in ours)
    infos = [info for page in scripted.list("k/") for info in page]
    assert [info.key for info in infos] == sorted(names, key=str.encode)
    assert all(scripted.stat(info.key) == info for info in infos)
    plain.close()


def test_a_range_is_read_with_getrange_and_a_missing_key_is_not_found(
    redis_server: int, raw: redis.Redis
) -> None:
    raw.set("big", bytes(range(256)) * 4096)  # 1 MiB
    store = RedisStorage(port=redis_server, db=5)

    def calls() -> dict[str, int]:
        stats = raw.info("commandstats")
        return {
            name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
            for name in ("get", "getrange")
        }

    before = calls()
    assert b"".join(store.read("big", start=1000, end=1010)) == (bytes(range(256)) * 4)[1000:1010]
    after = calls()
    assert after["getrange"] == before["getrange"] + 1
    assert after["get"] == before["get"]  # never the whole value for a range
    with pytest.raises(ObjectNotFound):
        b"".join(store.read("nope", start=2, end=5))
    with pytest.raises(ObjectNotFound):
        b"".join(store.read("nope", start=3, end=3))
