"""Comparing a listing with the link table: two streams sorted by key, merged in one pass.

Each object comes out once, as a pair (what the listing says, what the links say):

    (info, None)     new: listed, never synced
    (info, linked)   listed and synced: unchanged when the versions agree, else changed
    (None, linked)   missing: synced before, no longer listed

Memory holds one page of each stream, however large the store. Both streams must be in the
same order (keys by UTF-8 bytes: Python compares ``str`` by code points, which is the same
order); a listing that goes backwards would make the merge wrong, so it is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tether.storages.base import ObjectInfo
from tether.sync.links import Linked

Pair = tuple[ObjectInfo | None, Linked | None]


class OutOfOrder(Exception):
    """The listing is not in key order (a backend bug): a merge would be wrong."""


def version_of(info: ObjectInfo) -> str:
    """What says the object changed: the ETag (a size and mtime for local files, a value
    hash for Redis, as each backend fills it), else its size and modification time."""
    if info.etag is not None:
        return info.etag
    return f"{info.size}:{info.modified.isoformat() if info.modified else ''}"


def merge(listed: Iterable[ObjectInfo], linked: Iterable[Linked]) -> Iterator[Pair]:
    """The union of both streams in key order, paired by key."""
    links = iter(linked)
    link = next(links, None)
    previous: str | None = None
    for info in listed:
        key = info.key
        if previous is not None and key <= previous:
            raise OutOfOrder(f"the listing went from {previous!r} back to {key!r}")
        previous = key
        while link is not None and link.key < key:
            yield None, link
            link = next(links, None)
        if link is not None and link.key == key:
            yield info, link
            link = next(links, None)
        else:
            yield info, None
    while link is not None:
        yield None, link
        link = next(links, None)
