"""What each stored URI form names (a table), checked against the backends' own ``uri()``
where a backend writes the form; and the caches resolving keeps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tether.resolve.cache import LRU, ExpiringURLs, margin
from tether.resolve.uris import (
    Direct,
    LocalFileURI,
    ObjectURI,
    Parsed,
    Unknown,
    UploadURI,
    looks_like_uri,
    parse,
)
from tether.storages.local import LocalStorage, ManagedLocalStorage
from tether.storages.memory import MemoryStorage

CASES: list[tuple[str, Parsed | None]] = [
    ("s3://b/a b#1.jpg", ObjectURI("s3", "b", "a b#1.jpg")),  # the key is raw
    ("s3://b/dir/%41?x=1", ObjectURI("s3", "b", "dir/%41?x=1")),
    ("S3://b/k", ObjectURI("s3", "b", "k")),
    ("gs://bucket/x/y.png", ObjectURI("gcs", "bucket", "x/y.png")),
    ("azure-blob://cont/img/ü.jpg", ObjectURI("azure_blob", "cont", "img/ü.jpg")),
    ("redis://3/tasks/a%20b", ObjectURI("redis", "3", "tasks/a b")),
    ("memory://bkt/a%23b", ObjectURI("memory", "bkt", "a#b")),
    ("/data/local-files/?d=img/a%20b%231.jpg", LocalFileURI("img/a b#1.jpg")),
    ("/data/upload/7/a%20b.png", UploadURI("7/a b.png")),
    ("http://host/a.jpg", Direct()),
    ("HTTPS://host/a.jpg?sig=1", Direct()),
    ("plain text", None),
    ("a note: s3://b/k", None),
    ("", None),
]
REFUSED = [
    ("s3://bucket", "needs a bucket and a key"),
    ("s3:///key", "needs a bucket and a key"),
    ("gs://bucket/", "needs a bucket and a key"),
    ("redis://0/%ff", "not percent-encoded UTF-8"),
    ("ftp://host/a", "tether resolves no ftp:// URIs"),
    ("/data/local-files/?x=1", "needs d="),
    ("/data/local-files/other?d=a", "/data/local-files/?d=<path>"),
    ("/data/upload/a/../b", "not a key of the managed storage"),
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_each_form_names_its_object(value: str, expected: Parsed | None) -> None:
    assert parse(value) == expected
    assert looks_like_uri(value) == (expected is not None)


@pytest.mark.parametrize(("value", "reason"), REFUSED)
def test_uri_like_strings_of_no_known_form_say_why(value: str, reason: str) -> None:
    parsed = parse(value)
    assert isinstance(parsed, Unknown) and reason in parsed.reason


@pytest.mark.parametrize("key", ["a b#1.jpg", "ü/ç?x=1&y.txt", "100%.png", "a+b.jpg"])
def test_the_backends_uris_parse_back_to_their_keys(key: str, tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    local = LocalStorage(str(folder), tmp_path)
    assert parse(local.uri(key)) == LocalFileURI(f"store/{key}")
    managed = ManagedLocalStorage(str(folder), tmp_path)
    assert parse(managed.uri(key)) == UploadURI(key)
    memory = MemoryStorage(bucket="bkt")
    assert parse(memory.uri(key)) == ObjectURI("memory", "bkt", key)


def test_the_lru_keeps_the_most_recently_used() -> None:
    lru: LRU[int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # now b is the oldest
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)
    made: list[int] = []

    def make() -> int:
        made.append(1)
        return 9

    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(100):
            lru.get_or_make("d", make)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lru.get("d") == 9 and len(lru) == 2 and 1 <= len(made) <= 8


def test_a_url_is_handed_out_until_its_margin_before_expiry() -> None:
    cache = ExpiringURLs()
    now = time.time()
    cache.put("fresh", "u1", now + 100)
    cache.put("old", "u2", now + 5)
    assert cache.get("fresh", margin=10) == ("u1", now + 100)
    assert cache.get("old", margin=10) is None
    assert margin(15 * 60) == 60 and margin(60) == 12
