"""Comparing a listing with the link table: two streams sorted by key, merged in one pass.

Each object comes out once, as a pair (what the listing says, what the links say):

    (info, None)     new: listed, never synced
    (info, linked)   listed and synced: unchanged when the versions agree, else changed
    (None, linked)   missing: synced before, no longer listed

or, for a whole listing page whose objects are exactly the next links with the same
versions (what most pages of a re-sync are), as one ``Same(count, last key)``: a page is
then compared with two list comparisons, not object by object.

Memory holds a page or two of each stream, however large the store. Both streams must be
in the same order (keys by UTF-8 bytes: Python compares ``str`` by code points, which is the
same order); a listing that goes backwards, or repeats a key, would make the merge wrong, so
it is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

from tether.storages.base import ObjectInfo
from tether.sync.links import Linked, LinkPage

Pair = tuple[ObjectInfo | None, Linked | None]


class Same(NamedTuple):
    """A run of listed objects whose links say they are unchanged."""

    objects: int
    last: str  # the run's last key


class OutOfOrder(Exception):
    """The listing is not in strict key order (a backend bug): a merge would be wrong."""


def version_of(info: ObjectInfo) -> str:
    """What says the object changed: the ETag (a size and mtime for local files, a value
    hash for Redis, as each backend fills it), else its size and modification time."""
    if info.etag is not None:
        return info.etag
    return f"{info.size}:{info.modified.isoformat() if info.modified else ''}"


class _Links:
    """The link rows ahead, buffered a page or more at a time (as parallel lists)."""

    def __init__(self, pages: Iterable[LinkPage]) -> None:
        self._pages = iter(pages)
        self.keys: list[str] = []
        self.items: list[int] = []
        self.row_ids: list[int] = []
        self.versions: list[str] = []
        self.pos = 0
        self._done = False

    def fill(self, wanted: int) -> int:
        """Buffer at least ``wanted`` rows ahead if there are; returns how many are."""
        while len(self.keys) - self.pos < wanted and not self._done:
            page = next(self._pages, None)
            if page is None:
                self._done = True
                break
            columns: tuple[list[Any], ...] = (self.keys, self.items, self.row_ids, self.versions)
            more: tuple[list[Any], ...] = tuple(page)
            for column, added in zip(columns, more, strict=True):
                if self.pos:
                    del column[: self.pos]
                column += added
            self.pos = 0
        return len(self.keys) - self.pos

    def peek(self) -> str | None:
        """The next linked key."""
        if self.pos >= len(self.keys) and not self.fill(1):
            return None
        return self.keys[self.pos]

    def take(self) -> Linked:
        """The next linked object: every link of its key."""
        pos = self.pos
        key = self.keys[pos]
        found = Linked(key, self.versions[pos], {self.items[pos]: self.row_ids[pos]})
        self.pos += 1
        while self.peek() == key:
            found.rows[self.items[self.pos]] = self.row_ids[self.pos]
            self.pos += 1
        return found

    def same(self, keys: list[str], versions: list[str]) -> bool:
        """Whether the next links are exactly ``keys`` (one link each) with ``versions``;
        if so they are taken."""
        n = len(keys)
        if self.fill(n + 1) < n:
            return False
        linked, start = self.keys, self.pos
        end = start + n
        if linked[start] != keys[0] or linked[end - 1] != keys[-1]:
            return False
        if end < len(linked) and linked[end] == keys[-1]:
            return False  # the last object has more links (several items)
        if linked[start:end] != keys or self.versions[start:end] != versions:
            return False
        self.pos = end
        return True


def merge(
    pages: Iterable[Sequence[ObjectInfo]], link_pages: Iterable[LinkPage]
) -> Iterator[Pair | Same]:
    """The union of both streams in key order, paired by key."""
    links = _Links(link_pages)
    previous: str | None = None
    for page in pages:
        if not page:
            continue
        keys = [info.key for info in page]
        if (previous is not None and keys[0] <= previous) or not all(
            a < b for a, b in pairwise(keys)
        ):
            raise OutOfOrder(f"the listing is out of key order after {previous!r}")
        previous = keys[-1]
        versions = [i.etag if i.etag is not None else version_of(i) for i in page]
        if links.same(keys, versions):
            yield Same(len(keys), keys[-1])
            continue
        for info in page:
            key = info.key
            linked = links.peek()
            while linked is not None and linked < key:
                yield None, links.take()
                linked = links.peek()
            yield (info, links.take()) if linked == key else (info, None)
    while links.peek() is not None:
        yield None, links.take()
