"""What only local files have: the path guard on every key, symlinks, the document root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.storages.base import InvalidConfig, ObjectNotFound, StorageError
from tether.storages.local import LocalStorage
from tether.storages.registry import open_storage

HOSTILE_KEYS = [
    "..",
    ".",
    "../x",
    "../../etc/passwd",
    "a/../../x",
    "a/../b",  # stays inside, but '..' is refused outright
    "x/..",
    "/etc/passwd",
    "/x",
    "a//b",
    "./a",
    "a/./b",
    "a/",
    "a\\b",
    "..\\x",
    "a\x00b",
    "a\nb",
    "\x7f",
    "C:/x",
    "c:x",
    "",
    "\udcff",  # a lone surrogate: not text a file name can hold
]


def listed_keys(store: LocalStorage, prefix: str = "") -> list[str]:
    return [info.key for page in store.list(prefix) for info in page]


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"secret")
    return folder


@pytest.fixture
def store(document_root: Path) -> LocalStorage:
    (document_root / "store").mkdir()
    return LocalStorage(path=str(document_root / "store"), document_root=str(document_root))


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_everywhere(store: LocalStorage, tmp_path: Path, key: str) -> None:
    store.write("ok.txt", b"ok")
    before = tree(tmp_path)
    with pytest.raises(InvalidConfig):
        store.stat(key)
    with pytest.raises(InvalidConfig):
        store.read(key)
    with pytest.raises(InvalidConfig):
        store.write(key, b"evil")
    with pytest.raises(InvalidConfig):
        store.delete(key)
    with pytest.raises(InvalidConfig):
        store.uri(key)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("prefix", ["../", "../../etc/", "/etc/", "a/../", "a\\b/", "a\x00/x"])
def test_hostile_prefixes_are_refused(store: LocalStorage, prefix: str) -> None:
    with pytest.raises(InvalidConfig):
        list(store.list(prefix))


def test_a_file_symlink_out_of_the_folder(store: LocalStorage, outside: Path) -> None:
    os.symlink(outside / "secret.txt", Path(store.root) / "link.txt")
    store.write("plain.txt", b"plain")
    assert listed_keys(store) == ["plain.txt"]
    with pytest.raises(ObjectNotFound):
        store.stat("link.txt")
    with pytest.raises(ObjectNotFound):
        store.read("link.txt")
    store.write("link.txt", b"new")  # replaces the link itself, never writes through it
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert b"".join(store.read("link.txt")) == b"new"


def test_deleting_a_symlink_removes_the_link_not_its_target(store: LocalStorage) -> None:
    store.write("real.txt", b"real")
    os.symlink(Path(store.root) / "real.txt", Path(store.root) / "alias.txt")
    assert [(i.key, i.size) for p in store.list() for i in p] == [
        ("alias.txt", 4),
        ("real.txt", 4),
    ]
    assert store.stat("alias.txt").etag == store.stat("real.txt").etag
    store.delete("alias.txt")
    assert listed_keys(store) == ["real.txt"]


def test_a_folder_symlink_out_of_the_folder(store: LocalStorage, outside: Path) -> None:
    os.symlink(outside, Path(store.root) / "out")
    with pytest.raises(ObjectNotFound):
        store.stat("out/secret.txt")
    with pytest.raises(ObjectNotFound):
        store.read("out/secret.txt")
    with pytest.raises(InvalidConfig):
        store.write("out/new.txt", b"evil")
    with pytest.raises(InvalidConfig):
        store.delete("out/secret.txt")
    assert listed_keys(store) == []
    assert listed_keys(store, "out/") == []
    assert listed_keys(store, "out") == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_folder_symlinks_inside_are_not_walked(store: LocalStorage) -> None:
    store.write("d/x.txt", b"x")
    os.symlink(Path(store.root) / "d", Path(store.root) / "alias")
    os.symlink(Path(store.root), Path(store.root) / "d" / "loop")
    assert listed_keys(store) == ["d/x.txt"]
    assert listed_keys(store, "alias/") == []


def test_a_symlink_loop_is_not_found(store: LocalStorage) -> None:
    os.symlink("loop", Path(store.root) / "loop")
    with pytest.raises(ObjectNotFound):
        store.stat("loop")
    with pytest.raises(ObjectNotFound):
        store.stat("loop/x")
    assert listed_keys(store) == []


def test_the_folder_replaced_by_a_symlink(
    store: LocalStorage, outside: Path, document_root: Path
) -> None:
    os.rmdir(store.root)
    os.symlink(outside, store.root)
    with pytest.raises(InvalidConfig):
        store.stat("secret.txt")
    with pytest.raises(InvalidConfig):
        list(store.list())
    with pytest.raises(InvalidConfig):
        store.write("x.txt", b"evil")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_names_that_cannot_be_keys_are_skipped(store: LocalStorage) -> None:
    root = Path(store.root)
    store.write("good.txt", b"g")
    fd = os.open(os.fsencode(store.root) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    (root / "new\nline.txt").write_bytes(b"n")
    (root / "back\\slash.txt").write_bytes(b"b")
    (root / ".tether-abc.part").write_bytes(b"half written")
    os.mkfifo(root / "fifo")
    assert listed_keys(store) == ["good.txt"]


@pytest.mark.parametrize(("first", "second"), [("f", "f/g"), ("d/x", "d"), ("a/b/c", "a/b")])
def test_a_key_cannot_be_both_file_and_folder(store: LocalStorage, first: str, second: str) -> None:
    store.write(first, b"1")
    with pytest.raises(InvalidConfig):
        store.write(second, b"2")
    assert listed_keys(store) == [first]


def test_a_folder_is_not_an_object(store: LocalStorage) -> None:
    store.write("d/x", b"1")
    with pytest.raises(ObjectNotFound):
        store.stat("d")
    with pytest.raises(ObjectNotFound):
        store.read("d")
    store.delete("d")  # not an object: nothing to delete
    assert listed_keys(store) == ["d/x"]


def test_etag_is_size_and_mtime(store: LocalStorage) -> None:
    store.write("e.txt", b"12345")
    path = Path(store.root) / "e.txt"
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    info = store.stat("e.txt")
    assert info.etag == "5-1700000000123456789"
    assert info.modified is not None and int(info.modified.timestamp()) == 1_700_000_000


def test_uri_is_label_studios_local_files_url(document_root: Path) -> None:
    (document_root / "data" / "in").mkdir(parents=True)
    deep = LocalStorage(path=str(document_root / "data" / "in"), document_root=document_root)
    assert deep.uri("a b/c#d?.jpg") == "/data/local-files/?d=data/in/a%20b/c%23d%3F.jpg"
    assert deep.uri("100%+é.png") == "/data/local-files/?d=data/in/100%25%2B%C3%A9.png"
    at_root = LocalStorage(path=str(document_root), document_root=document_root)
    assert at_root.uri("x/y.txt") == "/data/local-files/?d=x/y.txt"


def test_the_folder_must_be_inside_the_document_root(
    document_root: Path, outside: Path, tmp_path: Path
) -> None:
    os.symlink(outside, document_root / "sneaky")
    bad = [
        str(outside),
        "relative/path",
        "",
        str(document_root / ".." / "outside"),
        str(document_root / "sneaky"),
        str(document_root / "sneaky" / "deeper"),
        str(document_root) + "-sibling",
        "/",
    ]
    for path in bad:
        with pytest.raises(InvalidConfig):
            LocalStorage(path=path, document_root=document_root)
    with pytest.raises(InvalidConfig):
        LocalStorage(path=str(tmp_path / "nope" / "x"), document_root=tmp_path / "nope")


def test_a_missing_folder(document_root: Path) -> None:
    store = LocalStorage(path=str(document_root / "later"), document_root=document_root)
    with pytest.raises(ObjectNotFound):
        list(store.list())
    with pytest.raises(ObjectNotFound):
        store.stat("x")
    store.delete("x")
    store.write("x", b"made")  # writing makes the folder
    assert listed_keys(store) == ["x"]


def test_open_storage_builds_it(document_root: Path) -> None:
    store = open_storage("local", path=str(document_root), document_root=str(document_root))
    assert isinstance(store, LocalStorage)
    with pytest.raises(InvalidConfig):
        open_storage("no-such-type")
    with pytest.raises(StorageError):
        open_storage("local", path="/etc", document_root=str(document_root))


def test_listing_streams_one_folder_at_a_time(store: LocalStorage) -> None:
    """A page comes before later folders are read: remove a later folder after the first
    page and the listing does not show it."""
    for folder in ("a", "b"):
        for i in range(store.page_size):
            (Path(store.root) / folder).mkdir(exist_ok=True)
            (Path(store.root) / folder / f"{i:04d}").write_bytes(b"")
    pages = store.list()
    first = next(pages)
    assert {info.key[0] for info in first} == {"a"}
    for path in (Path(store.root) / "b").iterdir():
        path.unlink()
    assert list(pages) == []
