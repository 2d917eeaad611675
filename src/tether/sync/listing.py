"""A storage's listing, read by a thread of its own a few pages ahead of the sync's writer.

``Ahead`` runs an iterator in a thread that puts its items into a bounded queue (the
listing, the link reader and the sync's planner each run so): listing (network or disk) and
writing (the database) overlap, and memory holds a few pages, whatever the store's size.

Filters (``Scope``): the key prefix (the backend's), ``recursive`` (the backend's),
``regex_filter`` matched with ``re.match`` against the whole key as the backend lists it, the
prefix included. That is what Label Studio does for S3, GCS, Azure and Redis; for local files
it matches the file's name only, where tether matches the path under the storage's folder
(the key), the same rule for every backend. Folder markers (keys ending in ``/``) are left
out, and an upper bound ``until`` ends a part of a split sync.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tether.storages.base import ObjectInfo, Storage

_END = object()
T = TypeVar("T")
_DEPTH = 8  # pages the thread may be ahead


@dataclass(frozen=True)
class Scope:
    """Which objects a sync (or a part of one) takes."""

    prefix: str = ""
    recursive: bool = True
    regex: re.Pattern[str] | None = None
    after: str | None = None  # keys after this one (a resumed sync's last committed key)
    until: str | None = None  # keys up to this one (a part of a split sync)

    def keep(self, page: Sequence[ObjectInfo]) -> tuple[list[ObjectInfo], bool]:
        """The page's objects in scope, and whether the listing is past the scope's end."""
        match = self.regex.match if self.regex is not None else None
        kept = [
            info
            for info in page
            if not info.key.endswith("/") and (match is None or match(info.key) is not None)
        ]
        until = self.until
        if until is None or not page or page[-1].key < until:
            return kept, False
        return [info for info in kept if info.key <= until], True


class Ahead(Generic[T]):
    """Runs an iterator in a thread of its own, a few items ahead of whoever reads
    ``items()`` (a bounded queue between them); ``close()`` stops it, however the reader
    ends. An exception in the thread is raised in the reader."""

    def __init__(self, make: Callable[[], Iterator[T]], name: str, depth: int = _DEPTH) -> None:
        self._make = make
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        source: Iterator[T] | None = None
        try:
            source = self._make()
            for item in source:
                if not self._put(item):
                    break
            self._put(_END)
        except BaseException as exc:  # handed to the reader, which raises it
            self._put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def items(self) -> Iterator[T]:
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._closed.set()
        while True:  # unblock a thread waiting to put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def listing(storage: Storage, scope: Scope) -> Ahead[list[ObjectInfo]]:
    """The scope's objects, a page at a time, listed by a thread ahead of the reader."""

    def pages() -> Iterator[list[ObjectInfo]]:
        for page in storage.list(scope.prefix, start_after=scope.after, recursive=scope.recursive):
            kept, ended = scope.keep(page)
            if kept:
                yield kept
            if ended:
                return

    return Ahead(pages, "sync-listing")
