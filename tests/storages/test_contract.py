"""The storage contract, written once: every backend in conftest.BACKEND_FACTORIES runs it.

A test's fixture data goes in through ``put`` (around the backend, see conftest.py), except
where ``Storage.write`` is what the test is about.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tether.catalog.media import RAW_KEY_SCHEMES
from tether.storages.base import (
    PAGE_SIZE,
    InvalidConfig,
    ObjectInfo,
    ObjectNotFound,
    ReadsMany,
    Storage,
    UploadsNotSupported,
    direct_child,
)
from tether.storages.redis import RedisStorage

from .conftest import Backend, Put

CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")
AWKWARD_KEYS = [
    "with space.txt",
    "per%cent%20.txt",
    "plus+sign.txt",
    "hash#tag.txt",
    "question?mark.txt",
    "amp&eq=.txt",
    f"unicode/{CAFE_NFC}.txt",
    f"unicode/{CAFE_NFD}.txt",
    "unicode/日本語/ファイル.bin",
    "emoji/🙂.png",
    "deep/" + "/".join(f"level{i}" for i in range(12)) + "/leaf.txt",
]
# '-' (0x2D) < '.' < '/' (0x2F) < '0' (0x30) < 'a' < 'é' (UTF-8 0xC3..): a walk that sorts
# folder names without their '/' lists these out of order.
ORDER_KEYS = ["a-b", "a.b", "a/b", "a/c/d", "a0", "ab", "a\u00e9", "b", "a/b-c", "a/b.d", "A"]


def listed(storage: Storage, prefix: str = "", **kwargs: object) -> list[ObjectInfo]:
    return [info for page in storage.list(prefix, **kwargs) for info in page]  # type: ignore[arg-type]


def keys(storage: Storage, prefix: str = "", **kwargs: object) -> list[str]:
    return [info.key for info in listed(storage, prefix, **kwargs)]


def read(storage: Storage, key: str, **kwargs: int | None) -> bytes:
    return b"".join(storage.read(key, **kwargs))  # type: ignore[arg-type]


def fill(put: Put, names: list[str]) -> None:
    """Objects named ``names``, each holding its name, placed around the backend."""
    for name in names:
        put(name, name.encode())


def byte_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: name.encode("utf-8"))


def page_size(storage: Storage) -> int:
    return int(getattr(storage, "page_size", PAGE_SIZE))


# -- write, stat, read, delete ------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 40, b"\x00\xff" * 3])
def test_write_stat_read(storage: Storage, data: bytes) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    storage.write("dir/object.bin", data, content_type="application/octet-stream")
    info = storage.stat("dir/object.bin")
    assert (info.key, info.size) == ("dir/object.bin", len(data))
    assert read(storage, "dir/object.bin") == data
    if info.modified is not None:
        assert info.modified.tzinfo is not None
        assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert listed(storage) == [info]


def test_overwrite_changes_etag_and_size(storage: Storage) -> None:
    storage.write("k.json", b'{"a": 1}')
    first = storage.stat("k.json")
    storage.write("k.json", b'{"a": 22}')
    second = storage.stat("k.json")
    assert read(storage, "k.json") == b'{"a": 22}'
    assert second.size == first.size + 1
    assert second.etag != first.etag
    assert keys(storage) == ["k.json"]


def test_same_content_same_etag_on_stat_and_list(storage: Storage, put: Put) -> None:
    put("a.txt", b"same")
    assert storage.stat("a.txt") == listed(storage)[0]


RANGES = [
    (0, None),
    (3, None),  # start only
    (2, 5),  # start and end
    (0, 0),
    (5, 5),
    (7, 100),  # end past the end
    (9, None),  # start at the end
    (50, None),  # start past the end
    (50, 60),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_ranged_read(storage: Storage, put: Put, start: int, end: int | None) -> None:
    data = b"0123456789"
    put("r.txt", data)
    assert read(storage, "r.txt", start=start, end=end) == data[start:end]


def test_ranged_read_of_a_large_object(storage: Storage, put: Put) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: more than one read chunk
    put("big.bin", data)
    assert read(storage, "big.bin", start=1_000_000, end=1_600_001) == data[1_000_000:1_600_001]
    assert read(storage, "big.bin") == data


def test_delete(storage: Storage, put: Put) -> None:
    fill(put, ["x/1", "x/2"])
    storage.delete("x/1")
    assert keys(storage) == ["x/2"]
    with pytest.raises(ObjectNotFound):
        storage.stat("x/1")
    storage.delete("x/1")  # already gone: fine
    storage.delete("never/was/here.txt")
    assert keys(storage) == ["x/2"]


@pytest.mark.parametrize("key", ["missing.txt", "deep/missing/key.bin", "x"])
def test_not_found(storage: Storage, put: Put, key: str) -> None:
    put("x/present", b"1")  # "x" is a prefix of a key, not a key
    with pytest.raises(ObjectNotFound):
        storage.stat(key)
    with pytest.raises(ObjectNotFound):
        read(storage, key)
    with pytest.raises(ObjectNotFound):
        read(storage, key, start=1, end=2)


def test_read_many_reads_each_whole_value(storage: Storage, put: Put) -> None:
    """Where a backend reads several objects at once, it reads what ``read`` does, in the
    keys' order, and None for a key that holds nothing."""
    if not isinstance(storage, ReadsMany):
        pytest.skip(f"{type(storage).__name__} reads objects one at a time")
    names = ["b/2.json", "a/1.json", "emoji/🙂.json", "with space.json"]
    for n, name in enumerate(names):
        put(name, b"{}" * n)
    assert storage.read_many([]) == []
    wanted = [*names, "missing.json", names[0]]
    assert storage.read_many(wanted) == [b"", b"{}", b"{}{}", b"{}{}{}", None, b""]
    with pytest.raises(InvalidConfig):
        storage.read_many(["ok.json", ""])


def test_empty_store_lists_no_pages(storage: Storage) -> None:
    assert list(storage.list()) == []
    assert list(storage.list("nothing/")) == []


def test_empty_key_is_refused(storage: Storage) -> None:
    with pytest.raises(InvalidConfig):
        storage.write("", b"x")


# -- listing ----------------------------------------------------------------------------


def test_listing_is_in_key_byte_order(storage: Storage, put: Put) -> None:
    fill(put, ORDER_KEYS)
    assert keys(storage) == byte_order(ORDER_KEYS)
    assert keys(storage, "a") == byte_order([k for k in ORDER_KEYS if k.startswith("a")])


def test_listing_pages(storage: Storage, put: Put) -> None:
    size = page_size(storage)
    names = [f"p/{i:05d}" for i in range(2 * size + 7)]
    fill(put, names[::-1])
    pages = [list(page) for page in storage.list("p/")]
    assert [len(page) for page in pages] == [size, size, 7]
    assert [info.key for page in pages for info in page] == names
    assert all(info.size == len(info.key) for page in pages for info in page)


def test_start_after(storage: Storage, put: Put) -> None:
    size = page_size(storage)
    names = [f"s/{i:05d}" for i in range(size + 5)]
    fill(put, names)
    fill(put, ["r", "t"])
    for cut in (0, 3, size - 1, size, size + 3, size + 4):
        assert keys(storage, "s/", start_after=names[cut]) == names[cut + 1 :]
    assert keys(storage, "s/", start_after="s/") == names  # before every key under s/
    assert keys(storage, "s/", start_after="s/00001x") == names[2:]  # between two keys
    assert keys(storage, "s/", start_after="r") == names  # before the prefix
    assert keys(storage, "s/", start_after="s0") == []  # after every key under s/
    assert keys(storage, start_after="s/00002") == [*names[3:], "t"]


def test_start_after_into_folders(storage: Storage, put: Put) -> None:
    fill(put, ORDER_KEYS)
    ordered = byte_order(ORDER_KEYS)
    for cut, name in enumerate(ordered):
        assert keys(storage, start_after=name) == ordered[cut + 1 :]
    assert keys(storage, start_after="a/c") == ordered[ordered.index("a/c/d") :]


PREFIX_KEYS = ["img/1.jpg", "img/sub/2.jpg", "img2/x.jpg", "img.txt", "im", "other/img/3.jpg"]


@pytest.mark.parametrize(
    "prefix",
    ["", "i", "im", "img", "img/", "img/s", "img/sub/", "img2", "img2/", "other/", "nope", "img/1"],
)
@pytest.mark.parametrize("recursive", [True, False])
def test_prefix_is_a_plain_string_prefix(
    storage: Storage, put: Put, prefix: str, recursive: bool
) -> None:
    fill(put, PREFIX_KEYS)
    expected = [
        k
        for k in byte_order(PREFIX_KEYS)
        if k.startswith(prefix) and (recursive or direct_child(prefix, k))
    ]
    assert keys(storage, prefix, recursive=recursive) == expected


def test_prefix_img_against_img_slash(storage: Storage, put: Put) -> None:
    fill(put, ["img/1.jpg", "img2/x.jpg"])
    assert keys(storage, "img") == ["img/1.jpg", "img2/x.jpg"]
    assert keys(storage, "img/") == ["img/1.jpg"]


def test_not_recursive_keeps_direct_children_only(storage: Storage, put: Put) -> None:
    fill(put, ["top.txt", "d/one.txt", "d/two.txt", "d/e/three.txt", "d-x.txt"])
    assert keys(storage, recursive=False) == ["d-x.txt", "top.txt"]
    assert keys(storage, "d/", recursive=False) == ["d/one.txt", "d/two.txt"]
    assert keys(storage, "d/e/", recursive=False) == ["d/e/three.txt"]
    assert keys(storage, "d/", recursive=True) == ["d/e/three.txt", "d/one.txt", "d/two.txt"]


def test_not_recursive_pages_and_start_after(storage: Storage, put: Put) -> None:
    size = page_size(storage)
    names = [f"n/{i:05d}" for i in range(size + 3)]
    fill(put, [*names, "n/deeper/x", "n/deeper/y"])
    pages = list(storage.list("n/", recursive=False))
    assert [len(p) for p in pages] == [size, 3]
    assert keys(storage, "n/", recursive=False, start_after=names[size]) == names[size + 1 :]


# -- awkward keys, uri, sign --------------------------------------------------------------


def test_awkward_keys_round_trip(storage_backend: Backend) -> None:
    storage = storage_backend.storage
    for index, key in enumerate(AWKWARD_KEYS):
        storage_backend.put(key, f"{index}:{key}".encode())
    assert keys(storage) == byte_order(AWKWARD_KEYS)
    for index, key in enumerate(AWKWARD_KEYS):
        data = f"{index}:{key}".encode()
        assert storage.stat(key).size == len(data)
        assert read(storage, key) == data
        assert storage_backend.read_uri(storage.uri(key)) == data
    assert keys(storage, "unicode/caf") == byte_order(
        [f"unicode/{CAFE_NFC}.txt", f"unicode/{CAFE_NFD}.txt"]
    )
    for key in AWKWARD_KEYS:
        storage.delete(key)
    assert keys(storage) == []


def test_awkward_keys_are_written_as_themselves(storage_backend: Backend) -> None:
    storage = storage_backend.storage
    for index, key in enumerate(AWKWARD_KEYS):
        storage.write(key, f"{index}:{key}".encode())
    assert keys(storage) == byte_order(AWKWARD_KEYS)
    for index, key in enumerate(AWKWARD_KEYS):
        assert storage_backend.read_uri(storage.uri(key)) == f"{index}:{key}".encode()


def test_uri_names_the_object(storage_backend: Backend) -> None:
    storage = storage_backend.storage
    fill(storage_backend.put, ["a/b.txt", "a b.txt", "a%2Fb.txt", "a?b=c#d.txt"])
    uris = {storage.uri(k) for k in ["a/b.txt", "a b.txt", "a%2Fb.txt", "a?b=c#d.txt"]}
    assert len(uris) == 4  # distinct keys, distinct URIs
    for key in ["a/b.txt", "a b.txt", "a%2Fb.txt", "a?b=c#d.txt"]:
        uri = storage.uri(key)
        if uri.startswith(RAW_KEY_SCHEMES):  # the key as it is, as other tools write it
            assert uri.endswith("/" + key), uri
        else:  # a URL: nothing left in it to misparse
            assert not any(c in uri.split("?d=", 1)[-1] for c in " #"), uri
        assert storage_backend.read_uri(uri) == key.encode()


def test_sign_is_none_or_a_url_that_downloads_the_object(storage: Storage, put: Put) -> None:
    data = bytes(range(256))
    put("signed/x y#.bin", data)
    url = storage.sign("signed/x y#.bin", timedelta(minutes=5))
    if url is None:
        return
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data


# -- streamed writes -------------------------------------------------------------------------


class Broken(Exception):
    pass


def chunks_then_fail(parts: list[bytes]) -> Iterator[bytes]:
    yield from parts
    raise Broken("the source broke off")


def streams(storage: Storage) -> bool:
    """Every backend streams files but Redis, which refuses (its values are task JSON)."""
    if isinstance(storage, RedisStorage):
        with pytest.raises(UploadsNotSupported) as caught:
            storage.write_stream("x.bin", [b"data"])
        assert "task JSON" in caught.value.message
        assert keys(storage) == []
        return False
    return True


@pytest.mark.parametrize(
    "parts",
    [[], [b""], [b"one chunk"], [b"a", b"", b"bc", bytes(range(256)) * 4096]],
    ids=["nothing", "empty-chunk", "one", "many"],
)
def test_write_stream_stores_the_chunks_joined(storage: Storage, parts: list[bytes]) -> None:
    if not streams(storage):
        return
    storage.write_stream("s/streamed.bin", iter(parts), content_type="application/octet-stream")
    data = b"".join(parts)
    assert storage.stat("s/streamed.bin").size == len(data)
    assert read(storage, "s/streamed.bin") == data
    assert keys(storage) == ["s/streamed.bin"]


def test_write_stream_that_fails_leaves_no_object(storage: Storage) -> None:
    if not streams(storage):
        return
    with pytest.raises(Broken):
        storage.write_stream("s/new.bin", chunks_then_fail([b"x" * 1000, b"y" * 1000]))
    assert keys(storage) == []
    storage.write("s/old.bin", b"before")
    with pytest.raises(Broken):
        storage.write_stream("s/old.bin", chunks_then_fail([b"z" * 5000]))
    assert read(storage, "s/old.bin") == b"before"  # the object that was there stays
    assert keys(storage) == ["s/old.bin"]


def test_write_stream_takes_awkward_keys(storage_backend: Backend) -> None:
    storage = storage_backend.storage
    if not streams(storage):
        return
    for key in AWKWARD_KEYS:
        storage.write_stream(key, iter([key.encode(), b"!"]))
        assert storage_backend.read_uri(storage.uri(key)) == key.encode() + b"!"
