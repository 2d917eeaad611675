"""Comparing a listing with the link table: both sorted by key, merged in one pass.

Each object comes out once, as a pair (what the listing says, what the links say):

    (info, None)     new: listed, never synced
    (info, linked)   listed and synced: unchanged when the versions agree, else changed
    (None, linked)   missing: synced before, no longer listed

or, for a run of listed objects that are exactly the links of their key range with the same
versions (what most of a re-sync is), as one ``Same(count, last key)``.

The link table is read by key range: the listing, in batches of a few pages, each takes the
links after the previous batch's last key up to its own (``links.Links``), so every link
falls in one batch's range, and those after the last are missing. A batch is first compared
whole, as two joined strings against the database's aggregate of its range (``Links.same``:
one query, no object-by-object work in Python); only a batch that differs is paired object
by object.

Memory holds a batch of each, however large the store. Both must be in the same order (keys
by UTF-8 bytes: Python compares ``str`` by code points, which is the same order); a listing
that goes backwards, or repeats a key, would make the merge wrong, so it is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import NamedTuple

from tether.storages.base import ObjectInfo
from tether.sync.links import Linked, Links

Pair = tuple[ObjectInfo | None, Linked | None]
BATCH = 2000  # listed objects compared with their links at once


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


def merge(
    pages: Iterable[Sequence[ObjectInfo]],
    links: Links,
    after: str | None = None,
    until: str | None = None,
) -> Iterator[Pair | Same]:
    """The listing (its keys after ``after`` and up to ``until``) and the links of the same
    keys, in key order, paired by key."""
    previous = after
    for page in _batches(pages, BATCH):
        keys = [info.key for info in page]
        if previous is not None and keys[0] <= previous:
            raise OutOfOrder(f"the listing is out of key order after {previous!r}")
        versions = [i.etag if i.etag is not None else version_of(i) for i in page]
        last = keys[-1]
        # Equal to the database's keys of the range, which it gives in order, one link
        # each: the page is in strict order too. Else it is checked here.
        if links.same(previous, last, keys, versions):
            yield Same(len(keys), last)
        else:
            if not all(a < b for a, b in pairwise(keys)):
                raise OutOfOrder(f"the listing is out of key order after {previous!r}")
            yield from _pairs(page, links.read(previous, last))
        previous = last
    for linked in links.read(previous, until):
        yield None, linked


def _batches(pages: Iterable[Sequence[ObjectInfo]], size: int) -> Iterator[list[ObjectInfo]]:
    """The listing's pages joined into batches of at least ``size`` objects (the last may
    hold fewer): one query compares a batch."""
    batch: list[ObjectInfo] = []
    for page in pages:
        batch += page
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pairs(page: Sequence[ObjectInfo], linked: Iterator[Linked]) -> Iterator[Pair]:
    """A page paired with the links of its key range, object by object."""
    link = next(linked, None)
    for info in page:
        key = info.key
        while link is not None and link.key < key:
            yield None, link
            link = next(linked, None)
        if link is not None and link.key == key:
            yield info, link
            link = next(linked, None)
        else:
            yield info, None
    while link is not None:  # none: the range ends at the page's last key
        yield None, link
        link = next(linked, None)
